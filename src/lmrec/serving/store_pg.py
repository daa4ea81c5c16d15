"""The event store on PostgreSQL (psycopg 3, a connection pool), for several service workers or
replicas on several machines sharing one store. Same contract as the SQLite store
(:class:`lmrec.serving.store.EventStore`): a write is committed before it is acknowledged, and
``changes`` is the feed every process follows.

Writers take one transaction-level advisory lock, so keys (sequence values) commit in key order,
as in SQLite: a reader whose cursor passed a key can never later find a smaller one committed.
The schema is created and upgraded by numbered migrations recorded in ``lmrec_schema``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple

from lmrec.errors import LmrecError
from lmrec.serving.store import Changes, Cursor, heads_sql, read_changes

INSTALL = "pip install 'lmrec[postgres]'"
WRITE_LOCK = 0x6C6D726563  # "lmrec": serialises writers across every process sharing the database
MIGRATIONS = [  # index + 1 = schema version; append, never edit
    """
    CREATE TABLE events (
        seq BIGSERIAL PRIMARY KEY,
        user_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        timestamp BIGINT NOT NULL,
        type TEXT
    );
    CREATE INDEX events_user ON events (user_id, seq);
    CREATE TABLE relations (
        seq BIGSERIAL PRIMARY KEY,
        user_id TEXT NOT NULL,
        friend_id TEXT NOT NULL
    );
    CREATE TABLE tombstones (
        user_id TEXT PRIMARY KEY,
        deleted_at BIGINT NOT NULL,
        seq BIGSERIAL UNIQUE
    );
    CREATE TABLE items (
        seq BIGSERIAL PRIMARY KEY,
        item_id TEXT NOT NULL UNIQUE,
        fields TEXT NOT NULL
    );
    """,
]
HEADS = heads_sql({})  # every table keyed by its seq column


class StoreUnavailable(LmrecError):
    """The database cannot be reached; the service answers 503 and retries on the next request."""


def is_postgres(location: str) -> bool:
    return str(location).startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _timed_out(exc: Exception) -> bool:
    return type(exc).__name__ == "PoolTimeout"  # psycopg_pool's, an OperationalError


class PostgresEventStore:
    """Append-only event log in PostgreSQL; the same methods as the SQLite ``EventStore``."""

    def __init__(self, url: str, *, pool_size: int = 4, timeout_s: float = 5.0) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise LmrecError(f"a PostgreSQL event store needs psycopg: {INSTALL}") from None
        self.url, self.location = url, redact(url)
        self._errors = (psycopg.OperationalError, psycopg.InterfaceError)
        # No check on every checkout (a second round trip for every request): a connection the
        # server dropped fails its statement instead, and changes() recovers from that.
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout_s, open=False,
                                    kwargs={"autocommit": True})
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except Exception as exc:
            self._pool.close()
            raise LmrecError(f"event store {self.location} cannot be reached: {exc}") from None
        self.migrate()

    @contextmanager
    def _conn(self) -> Iterator:
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._errors as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        why = "no connection within the pool's timeout" if _timed_out(exc) else str(exc).strip()
        return StoreUnavailable(f"event store {self.location} is unavailable: {why}")

    @contextmanager
    def _write(self) -> Iterator:
        """A transaction holding the writers' lock."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield conn

    def migrate(self) -> int:
        """Bring the schema to the newest version (one transaction per step, under the writers' lock,
        so replicas starting together migrate once); returns the version."""
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS lmrec_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT MAX(version) FROM lmrec_schema").fetchone()
            version = row[0] or 0
            if version > len(MIGRATIONS):
                raise LmrecError(f"event store {self.location} has schema version {version}, newer than this lmrec "
                                 f"knows ({len(MIGRATIONS)}): upgrade lmrec")
            for v in range(version, len(MIGRATIONS)):
                conn.execute(MIGRATIONS[v])
                conn.execute("INSERT INTO lmrec_schema (version) VALUES (%s)", (v + 1,))
        return len(MIGRATIONS)

    def append(self, events: list[tuple[str, str, int, str | None]]) -> None:
        """Store a batch atomically (COPY: the fast bulk path): all events or none."""
        with self._write() as conn, conn.cursor() as cur:
            with cur.copy("COPY events (user_id, item_id, timestamp, type) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)

    def add_items(self, items: list[tuple[str, str]]) -> None:
        with self._write() as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO items (item_id, fields) VALUES (%s, %s)", items)

    def add_relation(self, user_id: str, friend_id: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO relations (user_id, friend_id) VALUES (%s, %s)", (user_id, friend_id))

    def forget(self, user_id: str, now: int) -> int:
        with self._write() as conn:
            deleted = conn.execute("DELETE FROM events WHERE user_id = %s", (user_id,)).rowcount
            conn.execute("DELETE FROM relations WHERE user_id = %s OR friend_id = %s", (user_id, user_id))
            conn.execute("INSERT INTO tombstones (user_id, deleted_at) VALUES (%s, %s) ON CONFLICT (user_id) DO "
                         "UPDATE SET deleted_at = EXCLUDED.deleted_at, seq = nextval(pg_get_serial_sequence("
                         "'tombstones', 'seq'))", (user_id, now))
        return deleted

    def tombstones(self) -> list[str]:
        with self._conn() as conn:
            return [r[0] for r in conn.execute("SELECT user_id FROM tombstones ORDER BY seq").fetchall()]

    def delete_items(self, item_ids: list[str]) -> None:
        with self._write() as conn, conn.cursor() as cur:
            cur.executemany("DELETE FROM items WHERE item_id = %s", [(i,) for i in item_ids])

    def changes(self, since: Cursor) -> Changes | None:
        try:
            with self._pool.connection() as conn:
                return self._changes_if_any(conn, since)
        except self._errors as exc:
            if _timed_out(exc):  # no connection at all: waiting twice would not help
                raise self._unavailable(exc) from None
            # Every request starts here, so the connections a server restart broke fail here first:
            # replace every idle one, then ask once more (a read is safe to repeat).
            self._pool.check()
        with self._conn() as conn:
            return self._changes_if_any(conn, since)

    @staticmethod
    def _changes_if_any(conn, since: Cursor) -> Changes | None:
        # Every request asks: one round trip when nothing changed, a snapshot only when something did.
        if all(h <= c for h, c in zip(conn.execute(HEADS).fetchone(), astuple(since), strict=True)):
            return None
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for every table
            return read_changes(lambda sql, params: conn.execute(sql, params).fetchall(), since,
                                conn.execute(HEADS).fetchone(), {}, "%s")

    def count(self) -> int:
        with self._conn() as conn:
            return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        self._pool.close()
