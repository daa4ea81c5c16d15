"""Pseudonymous user ids: keyed HMAC at ingestion, no raw id anywhere in a run or the event
store, raw ids still work on requests; coarser timestamps."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lmrec.config import RunConfig
from lmrec.errors import ConfigError
from lmrec.pipeline import train_run
from lmrec.privacy import KEY_ENV, PrivacyConfig, Pseudonymiser
from lmrec.runs import Run
from tests.conftest import call_service, make_events

KEY = "0123456789abcdef0123456789abcdef"


def raw_id(u: int) -> str:
    return f"person-{u:03d}-raw"  # long enough that no random byte string of a weights file holds it


def test_hmac_is_stable_under_a_key_and_differs_under_another():
    a, b = Pseudonymiser(KEY.encode()), Pseudonymiser(b"another key of sixteen+ bytes")
    assert a("alice") == a("alice") == a(" alice ") and a("alice") != a("bob")
    assert a("alice") != b("alice")
    assert a("alice").startswith("p_") and len(a("alice")) == 34
    assert a(a("alice")) == a("alice")  # a pseudonym maps to itself
    assert a(42) == a("42")


def test_a_missing_or_short_key_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ConfigError, match="needs a key of at least 16 bytes in \\$LMREC_ID_KEY"):
        Pseudonymiser.of(PrivacyConfig(pseudonymise=True))
    with pytest.raises(ConfigError, match="no such file"):
        Pseudonymiser.of(PrivacyConfig(pseudonymise=True, key_file=str(tmp_path / "none")))
    (tmp_path / "key").write_text(KEY + "\n")
    assert Pseudonymiser.of(PrivacyConfig(pseudonymise=True, key_file=str(tmp_path / "key")))("x") == \
        Pseudonymiser(KEY.encode())("x")
    assert Pseudonymiser.of(PrivacyConfig()) is None


@pytest.fixture
def private_run(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(KEY_ENV, KEY)
    events = make_events().with_columns(
        pl.col("user_id").str.slice(1).cast(pl.Int64).map_elements(raw_id, return_dtype=pl.String).alias("user_id"))
    events.write_csv(tmp_path / "events.csv")
    config = RunConfig.model_validate({"privacy": {"pseudonymise": True, "coarsen_time": "day"},
                                       "model": {"d_model": 16, "max_len": 10}, "training": {"epochs": 2},
                                       "runtime": {"progress": False}})
    train_run(tmp_path / "events.csv", "sasrec", tmp_path / "run", config, log=lambda *_: None)
    return tmp_path / "run"


def _holders(folder: Path, needles: list[bytes]) -> list[str]:
    found = []
    for p in folder.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            found += [f"{p.name}: {n.decode()}" for n in needles if n in data]
    return found


def test_no_raw_id_in_the_run_or_the_store(private_run, tmp_path):
    raw = [raw_id(u).encode() for u in range(30)]
    assert _holders(private_run, raw) == []
    db = tmp_path / "store" / "events.db"
    # The service takes raw ids and keeps only pseudonyms.
    r = call_service(private_run, db, "POST", "/events", json={"events": [{"user_id": raw_id(3), "item_id": 105},
                                                                          {"user_id": "newcomer-0001", "item_id": 101}]})
    assert r.status_code == 201
    rec = call_service(private_run, db, "GET", f"/recommend/{raw_id(3)}?k=3").json()
    assert rec["source"] == "model" and rec["user_id"] == raw_id(3)
    assert call_service(private_run, db, "GET", f"/users/{raw_id(3)}").json()["events"] == 9
    assert call_service(private_run, db, "DELETE", f"/users/{raw_id(4)}").status_code == 200
    # The run, the store with its WAL, the tombstone: no raw id anywhere.
    assert _holders(private_run, [*raw, b"newcomer-0001"]) == []
    assert _holders(db.parent, [*raw, b"newcomer-0001"]) == []
    # The run's own commands accept raw ids too; what they write holds pseudonyms.
    out = Run.open(private_run).recommend([raw_id(5)], 2)
    assert out["user_id"].to_list() == [Pseudonymiser(KEY.encode())(raw_id(5))] * 2


def test_timestamps_are_coarsened_to_the_day(private_run):
    ts = pl.read_parquet(private_run / "data" / "events.parquet")["timestamp"].to_numpy()
    assert (ts % 86_400 == 0).all() and len(np.unique(ts)) > 1


def test_without_the_key_the_service_refuses_to_start(private_run, tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    from lmrec.serving import EventStore, ServiceState

    with pytest.raises(ConfigError, match="LMREC_ID_KEY"):
        ServiceState(Run.open(private_run), EventStore(tmp_path / "e.db"))
