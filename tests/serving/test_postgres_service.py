"""The service on a PostgreSQL event store: the same answers as on SQLite, and a database that
goes away gives 503 with a clear message, then the service recovers by itself."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from lmrec.pipeline import train_run
from lmrec.runs import Run
from lmrec.serving import ServiceState, create_app
from lmrec.serving.store import open_store
from tests.conftest import make_events


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pgsrv")
    make_events().write_csv(folder / "events.csv")
    train_run(folder / "events.csv", "itemknn", folder / "run", log=lambda *_: None)
    return folder / "run"


def client(app):
    async def call(method, url, **kw):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return await c.request(method, url, **kw)

    return lambda method, url, **kw: asyncio.run(call(method, url, **kw))


def test_database_loss_gives_503_and_the_service_recovers(run_dir, postgres_server, postgres_url):
    call = client(create_app(ServiceState(Run.open(run_dir), open_store(postgres_url))))
    events = {"events": [{"user_id": "n1", "item_id": 101, "timestamp": 5}]}
    assert call("POST", "/events", json=events).status_code == 201
    postgres_server.stop()
    try:
        r = call("GET", "/recommend/n1?k=3")
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]
        assert "Traceback" not in r.text
        assert call("POST", "/events", json=events).status_code == 503  # not acknowledged, not stored
    finally:
        assert postgres_server.restart() is None
    r = call("GET", "/users/n1")
    assert r.status_code == 200 and r.json()["events"] == 1  # the refused write is not there
    assert call("POST", "/events", json=events).status_code == 201
    assert call("GET", "/users/n1").json()["events"] == 2
