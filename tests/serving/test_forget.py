"""The right to be forgotten: DELETE /users/{id}, `lmrec forget`, and tombstones that survive a
restart and keep the user out of the next training."""

import json
import sqlite3

from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.runs import Run
from tests.conftest import call_service, make_events


def _run(tmp_path):
    from lmrec.pipeline import train_run

    make_events().write_csv(tmp_path / "events.csv")
    train_run(tmp_path / "events.csv", "itemknn", tmp_path / "run", log=lambda *_: None)
    return tmp_path / "run"


def test_delete_removes_every_row_and_survives_a_restart(tmp_path):
    run, db = _run(tmp_path), tmp_path / "e.db"
    posted = {"events": [{"user_id": "u3", "item_id": 101}, {"user_id": "u3", "item_id": 102},
                         {"user_id": "u4", "item_id": 101}]}
    assert call_service(run, db, "POST", "/events", json=posted).status_code == 201
    before = call_service(run, db, "GET", "/recommend/u3?k=5").json()
    assert before["source"] == "model"
    r = call_service(run, db, "DELETE", "/users/u3")
    assert r.status_code == 200
    assert r.json() == {"user_id": "u3", "events_deleted": 2, "training_events_hidden": 8}
    with sqlite3.connect(db) as c:  # no row of theirs is left in the store
        assert c.execute("SELECT COUNT(*) FROM events WHERE user_id = 'u3'").fetchone()[0] == 0
        assert c.execute("SELECT COUNT(*) FROM events WHERE user_id = 'u4'").fetchone()[0] == 1
    # A new service on the same store (a restart): still a cold start.
    after = call_service(run, db, "GET", "/recommend/u3?k=5").json()
    assert after["source"] == "popularity"
    assert call_service(run, db, "GET", "/users/u3").status_code == 404
    assert call_service(run, db, "GET", "/users/u4").json()["events"] == 9
    assert call_service(run, db, "DELETE", "/users/nobody").status_code == 404
    # Coming back later is a new start: new events count, the old ones stay gone.
    call_service(run, db, "POST", "/events", json={"events": [{"user_id": "u3", "item_id": 105}]})
    assert call_service(run, db, "GET", "/users/u3").json()["events"] == 1


def test_delete_needs_the_write_key(tmp_path):
    import asyncio

    import httpx

    from lmrec.serving import EventStore, ServiceState, create_app

    run = _run(tmp_path)
    app_ = create_app(ServiceState(Run.open(run), EventStore(tmp_path / "e.db")), api_key="secret")

    async def go(headers):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_), base_url="http://t") as c:
            return await c.delete("/users/u1", headers=headers)

    assert asyncio.run(go({})).status_code == 401
    assert asyncio.run(go({"X-API-Key": "secret"})).status_code == 200


def test_cli_forget_and_train_without_the_forgotten(tmp_path):
    run, db = _run(tmp_path), tmp_path / "e.db"
    call_service(run, db, "POST", "/events", json={"events": [{"user_id": "u7", "item_id": 101}]})
    result = CliRunner().invoke(app, ["forget", "--db", str(db), "--user", "u7", "--user", "u8"])
    assert result.exit_code == 0, result.output
    assert "forgot 'u7': 1 stored events deleted" in result.output
    assert call_service(run, db, "GET", "/recommend/u8?k=3").json()["source"] == "popularity"
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "events.csv"), "--model", "pop",
                                      "--out", str(tmp_path / "again"), "--forget-db", str(db)])
    assert result.exit_code == 0, result.output
    assert "left out every event of 2 forgotten user(s)" in " ".join(result.output.split())
    users = json.loads((tmp_path / "again" / "data" / "users.json").read_text())
    users = users["ids"] if isinstance(users, dict) else users
    assert "u7" not in users and "u8" not in users and "u9" in users
    result = CliRunner().invoke(app, ["forget", "--db", str(tmp_path / "missing.db"), "--user", "x"])
    assert result.exit_code == 2 and "no such event store" in result.output
