"""POST /interest: P(like) for a known user or an explicit history, and its errors."""

import asyncio

import httpx
import pytest

from lmrec.config import RunConfig
from lmrec.pipeline import train_run
from lmrec.runs import Run
from lmrec.serving import EventStore, ServiceState, create_app


def _client(run_dir, db):
    app = create_app(ServiceState(Run.open(run_dir), EventStore(db)))

    def call(method, url, **kw):
        async def go():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
                return await c.request(method, url, **kw)

        return asyncio.run(go())

    return call


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from tests.conftest import make_events

    folder = tmp_path_factory.mktemp("serve-interest")
    make_events().write_csv(folder / "events.csv")
    config = RunConfig.model_validate({"data": {"like_threshold": 4}, "model": {"d_model": 16, "max_len": 10},
                                       "training": {"epochs": 3}, "runtime": {"progress": False}})
    train_run(folder / "events.csv", "interest", folder / "run", config, log=lambda *_: None)
    return folder / "run"


@pytest.fixture
def client(run_dir, tmp_path):
    return _client(run_dir, tmp_path / "events.db")


def test_known_user_and_explicit_history(client, run_dir):
    r = client("POST", "/interest", json={"user_id": "u0", "item_ids": [110, 111]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == "u0" and [p["item_id"] for p in body["predictions"]] == [110, 111]
    assert all(0 < p["probability"] < 1 for p in body["predictions"])
    # The same as predicting from the run's data directly.
    expected, _ = Run.open(run_dir).predict_interest(["u0"], [110])
    assert body["predictions"][0]["probability"] == pytest.approx(expected[0], rel=1e-5)
    r = client("POST", "/interest", json={"history": [100, {"item_id": 101, "like": False}], "item_ids": [110]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_history_labels_change_the_prediction(client):
    liked = client("POST", "/interest", json={"history": [{"item_id": 100, "like": True}] * 3, "item_ids": [110]})
    disliked = client("POST", "/interest", json={"history": [{"item_id": 100, "like": False}] * 3,
                                                 "item_ids": [110]})
    assert liked.json()["predictions"][0]["probability"] != disliked.json()["predictions"][0]["probability"]


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"user_id": "nobody", "item_ids": [110]}, 404, "user_id"),
    ({"user_id": "u0", "item_ids": [999]}, 404, "item_ids[0]"),
    ({"history": [999], "item_ids": [110]}, 404, "history[0]"),
    ({"user_id": "u0", "history": [100], "item_ids": [110]}, 422, "either user_id or history"),
    ({"user_id": "u0", "item_ids": []}, 422, "item_ids"),
    ({"user_id": "u0", "item_ids": [110], "extra": 1}, 422, "extra"),
    ({"history": [{"item_id": 100, "like": "maybe"}], "item_ids": [110]}, 422, "like"),
])
def test_bad_requests_are_4xx_naming_the_field(client, body, status, needle):
    r = client("POST", "/interest", json=body)
    assert r.status_code == status and needle in r.text


def test_a_ranking_model_answers_409(tmp_path):
    from tests.conftest import make_events

    make_events().write_csv(tmp_path / "events.csv")
    train_run(tmp_path / "events.csv", "pop", tmp_path / "run", log=lambda *_: None)
    r = _client(tmp_path / "run", tmp_path / "events.db")("POST", "/interest", json={"user_id": "u0", "item_ids": [110]})
    assert r.status_code == 409 and "--model interest" in r.text


def test_posted_events_are_labelled_by_type_and_survive_a_restart(tmp_path):
    import polars as pl

    rows = [{"user_id": f"u{u}", "item_id": 100 + (u + j) % 12, "timestamp": j, "event_type": "buy" if (u + j) % 3
             else "return"} for u in range(20) for j in range(6)]
    pl.DataFrame(rows).write_csv(tmp_path / "events.csv")
    config = RunConfig.model_validate({"data": {"event_labels": {"buy": "like", "return": "dislike"}},
                                       "model": {"d_model": 16, "max_len": 10}, "training": {"epochs": 2},
                                       "runtime": {"progress": False}})
    train_run(tmp_path / "events.csv", "interest", tmp_path / "run", config, log=lambda *_: None)
    state = ServiceState(Run.open(tmp_path / "run"), EventStore(tmp_path / "events.db"))
    state.add_events([("u0", 105, 10, "return"), ("u0", 106, 11, "view")])
    assert state.labelled_history("u0")[1][-2:] == [0, -1]
    before = state.interest(*state.labelled_history("u0"), [107])
    restarted = ServiceState(Run.open(tmp_path / "run"), EventStore(tmp_path / "events.db"))
    assert restarted.labelled_history("u0") == state.labelled_history("u0")
    assert restarted.interest(*restarted.labelled_history("u0"), [107]) == pytest.approx(before)
