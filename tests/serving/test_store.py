"""The event store's contract, on SQLite and on a real PostgreSQL server: what a write commits,
what the change feed returns, what a second process sharing the store sees, what forget removes."""

from __future__ import annotations

import pytest

from lmrec.errors import LmrecError
from lmrec.serving.store import Cursor, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "events.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(location):
    s = open_store(location)
    yield s
    s.close()


def test_the_change_feed_returns_each_write_once_in_order(store):
    assert store.changes(Cursor()) is None  # empty store
    store.append([("u1", "i1", 10, None), ("u2", "i2", 11, "click")])
    store.add_items([("i9", '{"title": "new"}')])
    first = store.changes(Cursor())
    assert first.events == [("u1", "i1", 10, None), ("u2", "i2", 11, "click")]
    assert first.items == [("i9", '{"title": "new"}')]
    assert store.changes(first.cursor) is None  # nothing since
    store.append([("u1", "i3", 12, None)])
    store.add_relation("u1", "u2")
    second = store.changes(first.cursor)
    assert second.events == [("u1", "i3", 12, None)] and second.relations == [("u1", "u2")]
    assert second.items == [] and second.tombstones == []
    assert store.count() == 3


def test_forget_deletes_events_and_relations_and_leaves_a_tombstone(store):
    store.append([("u1", "i1", 1, None), ("u1", "i2", 2, None), ("u2", "i1", 3, None)])
    store.add_relation("u1", "u2")
    seen = store.changes(Cursor()).cursor
    assert store.forget("u1", now=100) == 2
    change = store.changes(seen)
    assert change.tombstones == ["u1"] and change.events == []
    assert [e[0] for e in store.changes(Cursor()).events] == ["u2"]  # a fresh reader never sees u1's events
    assert store.changes(Cursor()).relations == []
    store.append([("u1", "i3", 5, None)])  # the user comes back later
    assert store.forget("u1", now=200) == 1
    assert store.changes(change.cursor).tombstones == ["u1"]  # forgetting again is a new change
    assert store.tombstones() == ["u1"]


def test_a_failed_batch_stores_nothing(store):
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own driver's error
        store.append([("u1", "i1", 1, None), ("u2", None, 2, None)])  # item_id NOT NULL
    assert store.count() == 0 and store.changes(Cursor()) is None


def test_two_processes_sharing_a_store_see_each_others_writes(location):
    a, b = open_store(location), open_store(location)
    try:
        a.append([("u1", "i1", 1, None)])
        seen = b.changes(Cursor())
        assert seen.events == [("u1", "i1", 1, None)]
        b.append([("u2", "i2", 2, None)])
        assert a.changes(seen.cursor).events == [("u2", "i2", 2, None)]
        b.delete_items(["nothing"])  # a no-op write is fine
    finally:
        a.close()
        b.close()


def test_writes_survive_reopening(location):
    s = open_store(location)
    s.append([("u1", "i1", 1, None)] * 3)
    s.close()
    s = open_store(location)
    try:
        assert s.count() == 3
    finally:
        s.close()


def test_postgres_schema_is_migrated_once_and_bad_urls_are_clear(postgres_url):
    import psycopg

    for _ in range(2):  # a second replica starting on the same database changes nothing
        open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM lmrec_schema").fetchall() == [(1,)]
    bad = postgres_url.rsplit(":", 1)[0] + ":1/nowhere"
    with pytest.raises(LmrecError, match="cannot be reached"):
        open_store(bad)
