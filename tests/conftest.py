"""Shared fixtures: small event logs with known structure, and the real data directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lmrec.data.datasets import data_dir
from lmrec.data.sequences import Interactions


def make_events(n_users: int = 30, n_items: int = 20, length: int = 8, seed: int = 0) -> pl.DataFrame:
    """Users walk a cycle of items: user u sees items u, u+1, ... (mod n_items), one per day.

    The next item is fully predictable from the last, which gives tests a known answer.
    """
    rows = []
    for u in range(n_users):
        for j in range(length):
            rows.append({"user_id": f"u{u}", "item_id": 100 + (u + j) % n_items, "timestamp": 1_000_000 + 86_400 * j,
                         "rating": float(1 + (u + j) % 5)})
    return pl.DataFrame(rows).sample(fraction=1.0, shuffle=True, seed=seed)  # file order must not matter


@pytest.fixture
def events_csv(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    make_events().write_csv(path)
    return path


def asgi_caller(app):
    """``call(method, url, **kw) -> response``: requests to an in-process app, one client each."""
    import asyncio

    import httpx

    async def go(method, url, **kw):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return await c.request(method, url, **kw)

    return lambda method, url, **kw: asyncio.run(go(method, url, **kw))


def call_service(run_dir: Path, db: Path, method: str, url: str, **kw):
    """One request to an in-process service over ``run_dir`` with its event store at ``db``."""
    from lmrec.runs import Run
    from lmrec.serving import EventStore, ServiceState, create_app

    return asgi_caller(create_app(ServiceState(Run.open(run_dir), EventStore(db))))(method, url, **kw)


@pytest.fixture(scope="session")
def itemknn_run(tmp_path_factory) -> Path:
    """An ItemKNN run on the cycle events, trained once for the service tests that only read it."""
    from lmrec.pipeline import train_run

    folder = tmp_path_factory.mktemp("itemknn")
    make_events().write_csv(folder / "events.csv")
    train_run(folder / "events.csv", "itemknn", folder / "run", log=lambda *_: None)
    return folder / "run"


def make_items(n_items: int = 20) -> pl.DataFrame:
    return pl.DataFrame({"item_id": [100 + i for i in range(n_items)],
                         "title": [f"Item number {i}" for i in range(n_items)],
                         "category": ["even" if i % 2 == 0 else "odd" for i in range(n_items)]})


def tiny_run(folder: Path, model_name: str = "sasrec", **sections):
    """Train ``model_name`` on the cycle events with their items file into ``folder / "run"`` (a
    small network, a few epochs, no progress bars); ``sections`` replace config sections (``model={}``
    for models without d_model / max_len)."""
    from lmrec.config import RunConfig
    from lmrec.pipeline import train_run

    make_events().write_csv(folder / "events.csv")
    make_items().write_csv(folder / "items.csv")
    config = RunConfig.model_validate({"model": {"d_model": 16, "max_len": 10}, "training": {"epochs": 5},
                                       "runtime": {"progress": False}} | sections)
    return train_run(folder / "events.csv", model_name, folder / "run", config, items=folder / "items.csv",
                     log=lambda *_: None)


@pytest.fixture
def items_csv(tmp_path: Path) -> Path:
    path = tmp_path / "items.csv"
    make_items().write_csv(path)
    return path


def interactions_from(seqs: list[list[int]], n_items: int) -> Interactions:
    """Interactions from per-user item lists, one event per day in list order."""
    user = np.concatenate([[u] * len(s) for u, s in enumerate(seqs)]).astype(np.int64)
    item = np.concatenate(seqs).astype(np.int64)
    ts = np.concatenate([np.arange(len(s)) * 86_400 for s in seqs]).astype(np.int64)
    return Interactions(user, item, ts, len(seqs), n_items)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep caches (text embeddings) out of the user's home during tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_dir()
    if not (root / "movielens-100k" / "raw" / "u.data").exists():
        pytest.skip(f"real datasets not found under {root} (set LMREC_DATA_DIR or place ../shared/data beside the repo)")
    return root


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for this test session (skips, saying why, where none can run)."""
    from tests.postgres import PostgresServer

    server = PostgresServer()
    reason = server.start()
    if reason:
        server.remove()
        pytest.skip(reason)
    yield server
    server.remove()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the session's server."""
    import uuid

    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")
