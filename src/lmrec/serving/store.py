"""Durable event store: SQLite in WAL mode. An event is committed before the API acknowledges it."""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import astuple, dataclass
from pathlib import Path

from lmrec.errors import LmrecError

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


PLAIN_HEADER = b"SQLite format 3\x00"
# The change feed's tables and columns, in Cursor order. Keys only grow (AUTOINCREMENT or a
# sequence never reuses one; a tombstone written again gets a new key), so "rows above the
# cursor" is what changed since it was taken.
FEED = (("items", "item_id, fields"), ("tombstones", "user_id"), ("relations", "user_id, friend_id"),
        ("events", "user_id, item_id, timestamp, type"))
KEYS = {"tombstones": "rowid"}  # SQLite's key column where it is not "seq"


def heads_sql(keys: dict[str, str]) -> str:
    """One query of the newest key of every feed table."""
    return "SELECT " + ", ".join(f"(SELECT COALESCE(MAX({keys.get(t, 'seq')}), 0) FROM {t})" for t, _ in FEED)


HEADS = heads_sql(KEYS)


@dataclass(frozen=True)
class Cursor:
    """How far a reader of the store has applied each table."""

    items: int = 0
    tombstones: int = 0
    relations: int = 0
    events: int = 0


@dataclass
class Changes:
    """What was stored between two cursors, per table in key order."""

    cursor: Cursor
    items: list[tuple[str, str]]
    tombstones: list[str]
    relations: list[tuple[str, str]]
    events: list[tuple[str, str, int, str | None]]


def read_changes(query, since: Cursor, heads, keys: dict[str, str], mark: str) -> Changes | None:
    """The rows above ``since`` up to ``heads`` (each table's newest key, read in the same snapshot
    as ``query(sql, params) -> rows`` reads them), or None when nothing changed; ``keys`` and
    ``mark`` are the backend's key columns and parameter placeholder."""
    now = Cursor(*(max(h, c) for h, c in zip(heads, astuple(since), strict=True)))  # a forget may lower a head
    if now == since:
        return None
    rows = {}
    for table, columns in FEED:
        lo, hi, key = getattr(since, table), getattr(now, table), keys.get(table, "seq")
        rows[table] = [] if hi <= lo else [tuple(r) for r in query(
            f"SELECT {columns} FROM {table} WHERE {key} > {mark} AND {key} <= {mark} ORDER BY {key}", (lo, hi))]
    return Changes(now, rows["items"], [r[0] for r in rows["tombstones"]], rows["relations"], rows["events"])


def is_encrypted(path: Path) -> bool:
    """An existing store that is not plain SQLite (SQLCipher pages look random from byte 0)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as f:  # the header only: a store can be gigabytes
        return f.read(len(PLAIN_HEADER)) != PLAIN_HEADER


def _connect(path: Path, key: bytes | None) -> tuple[object, tuple[type[Exception], ...]]:
    """A connection and the database-error types it raises."""
    if key is None:
        return sqlite3.connect(path, check_same_thread=False, isolation_level=None), (sqlite3.DatabaseError,)
    try:
        import sqlcipher3
    except ImportError:
        raise LmrecError("an encrypted event store needs SQLCipher: pip install 'lmrec[privacy]'") from None
    conn = sqlcipher3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA cipher_log_level = NONE")  # its own stderr lines would duplicate our error
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")  # a raw 256-bit key: no passphrase derivation
    return conn, (sqlite3.DatabaseError, sqlcipher3.DatabaseError)


class EventStore:
    """Append-only event log. ``synchronous=FULL`` so an acknowledged write survives a crash.

    With ``key`` (32 bytes: the run's data key, privacy.encrypt) the whole database is encrypted
    and authenticated page by page with SQLCipher; a missing or wrong key, or a damaged file, is
    one clear error."""

    def __init__(self, path: str | Path, key: bytes | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        if key is None and is_encrypted(self.path):
            raise LmrecError(f"event store {self.path} is encrypted: set $LMREC_DATA_KEY to its data key")
        self._conn, errors = _connect(self.path, key)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except errors as exc:
            self._conn.close()
            raise LmrecError(f"event store {self.path} cannot be opened ({exc}): "
                             + ("wrong data key, a plain store opened with a key, or a damaged file" if key is not None
                                else "not an lmrec event store")) from None

    @classmethod
    def open(cls, path: str | Path, run=None) -> EventStore:
        """The store of ``run`` (encrypted with its data key when the run's privacy.encrypt is on), or,
        without a run, a store that is encrypted when its file is (key from $LMREC_DATA_KEY)."""
        from lmrec.privacy.crypto import DATA_KEY_ENV, load_data_key

        path = Path(path)
        if run is not None:
            privacy = run.config.privacy
            key = load_data_key(privacy.data_key_file) if privacy.encrypt else None
        elif is_encrypted(path):
            if not os.environ.get(DATA_KEY_ENV):
                raise LmrecError(f"event store {path} is encrypted: set ${DATA_KEY_ENV} to its data key")
            key = load_data_key()
        else:
            key = None
        return cls(path, key)

    def rekey(self, new_key: bytes) -> None:
        """Re-encrypt the whole store under ``new_key`` (SQLCipher's rekey: one transaction)."""
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute(f"PRAGMA rekey = \"x'{new_key.hex()}'\"")

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

    def changes(self, since: Cursor) -> Changes | None:
        """Everything stored after ``since`` (by this process or any other sharing the file), or
        None when nothing was. Writers are serialised by SQLite, so keys commit in order and a row
        above the new cursor cannot appear later below it."""
        with self._lock:
            return read_changes(lambda sql, params: self._conn.execute(sql, params).fetchall(), since,
                                self._conn.execute(HEADS).fetchone(), KEYS, "?")

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_store(location: str | Path, run=None, *, must_exist: bool = False):
    """The event store at ``location``: a ``postgresql://`` URL (:mod:`lmrec.serving.store_pg`,
    shared by replicas on several machines) or a SQLite file (the default, one machine)."""
    from lmrec.serving.store_pg import PostgresEventStore, is_postgres

    if is_postgres(str(location)):
        if run is not None and run.config.privacy.encrypt:
            raise LmrecError("privacy.encrypt encrypts SQLite event stores (SQLCipher); PostgreSQL stores are "
                             "not encrypted by lmrec: use a SQLite store, or the database server's disk encryption "
                             "and TLS (sslmode=require in the URL) and turn privacy.encrypt off")
        return PostgresEventStore(str(location))
    if must_exist and not Path(location).exists():
        raise LmrecError(f"{location}: no such event store")
    return EventStore.open(location, run)

