"""Concurrent writers and readers: the served state is what a restart replays from the store."""

import asyncio
import threading

import httpx
import pytest

from lmrec.pipeline import train_run
from lmrec.runs import Run
from lmrec.serving import EventStore, ServiceState, create_app


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tests.conftest import make_events, make_items

    folder = tmp_path_factory.mktemp("concurrent")
    make_events().write_csv(folder / "events.csv")
    make_items().write_csv(folder / "items.csv")
    train_run(folder / "events.csv", "itemknn", folder / "itemknn", log=lambda *_: None)
    train_run(folder / "events.csv", "text-knn", folder / "text-knn", items=folder / "items.csv", log=lambda *_: None)
    return folder


def test_many_concurrent_posts_then_a_restart_give_the_same_state(runs, tmp_path):
    db = tmp_path / "events.db"
    state = ServiceState(Run.open(runs / "itemknn"), EventStore(db))
    app = create_app(state)
    # Interleaved writers on the same few users: any reordering between the store and memory
    # would show as a different history after the restart.
    batches = [{"events": [{"user_id": f"u{(j + n) % 4}", "item_id": 100 + (7 * j + n) % 20, "timestamp": j}
                           for n in range(1 + j % 3)]} for j in range(200)]

    async def post_all():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            posts = [client.post("/events", json=b) for b in batches]
            reads = [client.get(f"/recommend/u{j % 4}?k=3") for j in range(100)]
            return await asyncio.gather(*posts, *reads)

    responses = asyncio.run(post_all())
    assert all(r.status_code in (200, 201) for r in responses)
    served = {u: state.history(u) for u in ("u0", "u1", "u2", "u3")}
    state.store.close()
    restarted = ServiceState(Run.open(runs / "itemknn"), EventStore(db))
    assert restarted.events_replayed == sum(len(b["events"]) for b in batches)
    assert {u: restarted.history(u) for u in served} == served
    assert restarted.histories == state.histories


def test_adding_items_never_races_a_recommendation(runs, tmp_path):
    state = ServiceState(Run.open(runs / "text-knn"), EventStore(tmp_path / "events.db"))
    errors, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                recs, _ = state.recommend_user("u3", 10)
                cat = state.catalogue
                assert len(recs) == 10 and len(cat.titles) == len(cat.items) == cat.model.n_items
                state.similar(100, 3)
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for j in range(15):
            state.add_items([{"item_id": 1000 + j, "title": f"Item number {j % 20}", "category": "new"}])
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors[:3]
    assert len(state.catalogue.items) == 35
    state.store.close()
    restarted = ServiceState(Run.open(runs / "text-knn"), EventStore(tmp_path / "events.db"))
    assert restarted.catalogue.items.ids == state.catalogue.items.ids
    assert restarted.recommend_user("u3", 10) == state.recommend_user("u3", 10)
