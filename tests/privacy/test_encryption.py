"""Encryption at rest: a run's personal files are AES-GCM ciphertext; the right key opens the
run, a wrong or missing key and a tampered file are clear errors; key rotation."""

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.config import RunConfig
from lmrec.errors import ConfigError, RunError
from lmrec.pipeline import train_run
from lmrec.privacy.crypto import DATA_KEY_ENV, PERSONAL_FILES
from lmrec.runs import Run
from tests.conftest import call_service, make_events

KEY = "11" * 32
OTHER = "22" * 32


@pytest.fixture
def encrypted_run(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_KEY_ENV, KEY)
    make_events().write_csv(tmp_path / "events.csv")
    (tmp_path / "friends.csv").write_text("user_id,friend_id\nu1,u2\nu3,u4\n")
    config = RunConfig.model_validate({"privacy": {"encrypt": True}, "runtime": {"progress": False}})
    train_run(tmp_path / "events.csv", "itemknn", tmp_path / "run", config, social=tmp_path / "friends.csv",
              log=lambda *_: None)
    return tmp_path / "run"


def test_personal_files_are_ciphertext_and_the_key_opens_them(encrypted_run, tmp_path):
    for name in PERSONAL_FILES:
        data = (encrypted_run / name).read_bytes()
        assert data.startswith(b"LMREC-AES256GCM-1\n") and b"u17" not in data and b"PAR1" not in data[:40]
    run = Run.open(encrypted_run)
    assert len(run.dataset.users) == 30 and len(run.social().pairs) == 2
    assert run.recommend(["u3"], 3).height == 3
    assert call_service(encrypted_run, tmp_path / "e.db", "GET", "/recommend/u1?k=2").json()["source"] == "social"


def test_missing_wrong_key_and_tampering_are_refused(encrypted_run, monkeypatch):
    monkeypatch.delenv(DATA_KEY_ENV)
    with pytest.raises(ConfigError, match="personal data is encrypted"):
        Run.open(encrypted_run)
    monkeypatch.setenv(DATA_KEY_ENV, OTHER)
    with pytest.raises(RunError, match="events.parquet: cannot be decrypted: wrong data key, or the file was altered"):
        Run.open(encrypted_run)
    monkeypatch.setenv(DATA_KEY_ENV, "not a key")
    with pytest.raises(ConfigError, match="32 bytes"):
        Run.open(encrypted_run)
    monkeypatch.setenv(DATA_KEY_ENV, KEY)
    path = encrypted_run / "data" / "users.json"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(RunError, match="users.json: cannot be decrypted"):
        Run.open(encrypted_run)


def test_swapped_files_are_detected(encrypted_run):
    a, b = encrypted_run / "data" / "events.parquet", encrypted_run / "social" / "pairs.parquet"
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)  # a valid ciphertext, but of another file
    with pytest.raises(RunError, match="events.parquet: cannot be decrypted"):
        Run.open(encrypted_run)
    a.write_bytes(a_bytes)


def test_key_rotation(encrypted_run, tmp_path, monkeypatch):
    new = tmp_path / "new.key"
    new.write_text(OTHER)
    result = CliRunner().invoke(app, ["rekey", "--run", str(encrypted_run), "--new-key-file", str(new)])
    assert result.exit_code == 0, result.output
    with pytest.raises(RunError, match="cannot be decrypted"):
        Run.open(encrypted_run)  # the old key no longer opens it
    monkeypatch.setenv(DATA_KEY_ENV, OTHER)
    assert len(Run.open(encrypted_run).dataset.users) == 30
    # A wrong old key changes nothing.
    monkeypatch.setenv(DATA_KEY_ENV, KEY)
    before = {n: (encrypted_run / n).read_bytes() for n in PERSONAL_FILES}
    result = CliRunner().invoke(app, ["rekey", "--run", str(encrypted_run), "--new-key-file", str(new)])
    assert result.exit_code == 2 and "cannot be decrypted" in result.output
    assert {n: (encrypted_run / n).read_bytes() for n in PERSONAL_FILES} == before


def test_unencrypted_runs_are_unchanged(tmp_path):
    make_events().write_csv(tmp_path / "events.csv")
    train_run(tmp_path / "events.csv", "pop", tmp_path / "run", log=lambda *_: None)
    assert pl.read_parquet(tmp_path / "run" / "data" / "events.parquet").height == 240
    assert json.loads((tmp_path / "run" / "data" / "users.json").read_text())["kind"] == "str"
    result = CliRunner().invoke(app, ["rekey", "--run", str(tmp_path / "run"), "--new-key-file", "x"])
    assert result.exit_code == 2 and "is not encrypted" in result.output


def test_the_event_store_of_an_encrypted_run_is_encrypted(encrypted_run, tmp_path, monkeypatch):
    import asyncio

    import httpx

    from lmrec.serving import ServiceState, create_app
    from lmrec.serving.store import Cursor, EventStore

    db = tmp_path / "events.db"
    store = EventStore.open(db, Run.open(encrypted_run))
    app_ = create_app(ServiceState(Run.open(encrypted_run), store))

    async def post():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_), base_url="http://t") as c:
            return await c.post("/events", json={"events": [{"user_id": "secret-user-42", "item_id": 101}]})

    assert asyncio.run(post()).status_code == 201
    store.close()
    raw = db.read_bytes() + (db.with_name("events.db-wal").read_bytes() if db.with_name("events.db-wal").exists()
                             else b"")
    assert not raw.startswith(b"SQLite format 3") and b"secret-user-42" not in raw
    monkeypatch.delenv(DATA_KEY_ENV)
    from lmrec.errors import LmrecError

    with pytest.raises(LmrecError, match="is encrypted: set \\$LMREC_DATA_KEY"):
        EventStore.open(db)
    monkeypatch.setenv(DATA_KEY_ENV, OTHER)
    with pytest.raises(LmrecError, match="cannot be opened .*wrong data key"):
        EventStore.open(db)
    # Rotation re-keys the run and its store together.
    monkeypatch.setenv(DATA_KEY_ENV, KEY)
    new = tmp_path / "new.key"
    new.write_text(OTHER)
    result = CliRunner().invoke(app, ["rekey", "--run", str(encrypted_run), "--new-key-file", str(new), "--db", str(db)])
    assert result.exit_code == 0, result.output
    monkeypatch.setenv(DATA_KEY_ENV, OTHER)
    reopened = EventStore.open(db, Run.open(encrypted_run))
    assert reopened.changes(Cursor()).events[0][0] == "secret-user-42"
    reopened.close()
