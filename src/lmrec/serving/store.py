"""Durable event store: SQLite in WAL mode. An event is committed before the API acknowledges it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    type TEXT
);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id, seq);
CREATE TABLE IF NOT EXISTS relations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,
    friend_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tombstones (  -- forgotten users: their events before deleted_at are gone everywhere
    user_id TEXT PRIMARY KEY,
    deleted_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL UNIQUE,
    fields TEXT NOT NULL  -- JSON object of metadata columns
);
"""


class EventStore:
    """Append-only event log. ``synchronous=FULL`` so an acknowledged write survives a crash."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(SCHEMA)

    def append(self, events: list[tuple[str, str, int, str | None]]) -> None:
        """Store a batch atomically: all events or none."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT INTO events(user_id, item_id, timestamp, type) VALUES (?, ?, ?, ?)",
                                       events)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def add_items(self, items: list[tuple[str, str]]) -> None:
        """Store new items (id, JSON fields) atomically."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT INTO items(item_id, fields) VALUES (?, ?)", items)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def add_relation(self, user_id: str, friend_id: str) -> None:
        with self._lock:
            self._conn.execute("INSERT INTO relations(user_id, friend_id) VALUES (?, ?)", (user_id, friend_id))

    def relations(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._conn.execute("SELECT user_id, friend_id FROM relations ORDER BY seq").fetchall()

    def forget(self, user_id: str, now: int) -> int:
        """Delete the user's events and relations and leave a tombstone, atomically; returns how
        many events were deleted. The tombstone keeps the run's own events of the user out of the
        service's replay and, with `lmrec train --forget-db`, out of the next training."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = self._conn.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
                self._conn.execute("DELETE FROM relations WHERE user_id = ? OR friend_id = ?", (user_id, user_id))
                self._conn.execute("INSERT OR REPLACE INTO tombstones(user_id, deleted_at) VALUES (?, ?)",
                                   (user_id, now))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return deleted

    def tombstones(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT user_id FROM tombstones ORDER BY deleted_at").fetchall()]

    def delete_items(self, item_ids: list[str]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM items WHERE item_id = ?", [(i,) for i in item_ids])

    def items(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._conn.execute("SELECT item_id, fields FROM items ORDER BY seq").fetchall()

    def all(self) -> list[tuple[str, str, int, str | None]]:
        with self._lock:
            return self._conn.execute("SELECT user_id, item_id, timestamp, type FROM events ORDER BY seq").fetchall()

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
