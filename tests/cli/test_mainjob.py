"""`make run` on a machine without the data: it downloads ML-100K (checksummed) or says what to do."""

import dataclasses
import hashlib
import zipfile

import pytest

from lmrec.cli import mainjob
from lmrec.data.datasets import DATASETS
from tests.conftest import make_events


def movielens_zip(path):
    """A small archive in the GroupLens ML-100K layout (tab-separated u.data, |-separated u.item)."""
    events = make_events()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.data", "".join(f"{int(u[1:]) + 1}\t{i}\t{int(r)}\t{t}\n" for u, i, t, r in
                                              events.select("user_id", "item_id", "timestamp", "rating").iter_rows()))
        zf.writestr("ml-100k/u.item", "".join(f"{100 + j}|Movie {j} (1995)|01-Jan-1995||http://x" + "|0" * 18 + "|1\n"
                                              for j in range(20)))
        zf.writestr("ml-100k/u.user", "1|24|M|technician|85711\n")
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def no_local_data(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("LMREC_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_make_run_downloads_ml100k_when_it_is_missing(tmp_path, monkeypatch, capsys, no_local_data):
    archive = tmp_path / "ml-100k.zip"
    md5 = movielens_zip(archive)
    monkeypatch.setitem(DATASETS, "ml-100k", dataclasses.replace(DATASETS["ml-100k"], url=archive.as_uri(), md5=md5))
    mainjob.main(["--out", str(tmp_path / "run"), "--users", "1"])
    assert (tmp_path / "cache" / "lmrec" / "movielens-100k" / "raw" / "u.data").exists()
    out = capsys.readouterr().out
    assert "30 users, 20 items, 240 events" in out and "done" in out
    assert (tmp_path / "run" / "model" / "weights.safetensors").exists()


def test_make_run_offline_says_what_to_do_in_one_line(tmp_path, monkeypatch, capsys, no_local_data):
    missing = (tmp_path / "nowhere.zip").as_uri()
    monkeypatch.setitem(DATASETS, "ml-100k", dataclasses.replace(DATASETS["ml-100k"], url=missing))
    with pytest.raises(SystemExit) as exit_info:
        mainjob.main(["--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    out = capsys.readouterr().out
    assert "downloading it failed" in out and "LMREC_DATA_DIR" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) <= 3  # one message (wrapped by the terminal width at most)
    assert not (tmp_path / "run").exists()
