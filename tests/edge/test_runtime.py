"""The device runtime: int8 rows, bundle checks, live events and the command line, run in a
process that cannot import torch."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmrec.edge import EdgeError, EdgeRecommender
from lmrec.edge.__main__ import main
from lmrec.edge.quantise import dequantise_rows, quantise_rows
from tests.conftest import tiny_run

pytest.importorskip("onnxscript", reason="lmrec export needs the export extra: pip install 'lmrec[export]'")

NO_TORCH = ("import sys\n"
            "for m in ('torch', 'polars', 'pandas', 'scipy'): sys.modules[m] = None  # any import of them fails\n"
            "import runpy\n"
            "sys.argv[0] = 'lmrec.edge'\n"
            "runpy.run_module('lmrec.edge', run_name='__main__')\n")


def test_quantised_rows_are_within_half_a_step():
    rows = np.array([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [100.0, 3.0, -7.0]], dtype=np.float32)
    q, scale = quantise_rows(rows)
    assert q.dtype == np.int8 and scale.dtype == np.float32
    np.testing.assert_allclose(scale, [1.0 / 127, 1.0, 100.0 / 127])  # each row its own range; zero row: 1
    np.testing.assert_array_equal(q[0], [64, -127, 32])  # 0.5 * 127 = 63.5 rounds to even 64
    back = dequantise_rows(q, scale)
    assert (np.abs(back - rows) <= scale[:, None] / 2 + 1e-7).all()
    assert (back[1] == 0).all()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Path]:
    from lmrec.export.bundle import export_bundle
    from lmrec.runs import Run

    folder = tmp_path_factory.mktemp("edge")
    tiny_run(folder, "sasrec")
    export_bundle(Run.open(folder / "run"), folder / "bundle", log=lambda *_: None)
    return folder, folder / "bundle"


def _copy(bundle: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(bundle, to)
    return to


def test_cli_in_a_process_without_torch_writes_what_lmrec_recommend_writes(bundle, tmp_path):
    folder, b = bundle
    out = tmp_path / "recs.csv"
    done = subprocess.run([sys.executable, "-c", NO_TORCH, "--bundle", str(b), "--events", str(folder / "events.csv"),
                           "--k", "5", "--output", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote 150 rows for 30 users" in done.stderr
    from lmrec.runs import Run

    want = Run.open(folder / "run").recommend(None, 5)
    with out.open() as f:
        got = list(csv.DictReader(f))
    assert [r["user_id"] for r in got] == want["user_id"].to_list()
    assert [int(r["item_id"]) for r in got] == want["item_id"].to_list()
    assert [int(r["rank"]) for r in got] == want["rank"].to_list()
    np.testing.assert_allclose([float(r["score"]) for r in got], want["score"].to_numpy(), rtol=1e-4, atol=1e-5)


def test_events_are_ordered_by_time_and_unknown_items_skipped(bundle, tmp_path):
    _, b = bundle
    events = tmp_path / "e.tsv"
    events.write_text("user_id\titem_id\ttimestamp\nann\t105\t30\nann\t999\t20\nann\t103\t10\nbob\t101\t5\n")
    out = tmp_path / "r.csv"
    assert main(["--bundle", str(b), "--events", str(events), "--k", "3", "--output", str(out)]) == 0
    rec = EdgeRecommender(b)
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["item_id"]) for r in rows if r["user_id"] == "ann"] == [i for i, _ in rec.recommend([103, 105], 3)]
    assert {r["user_id"] for r in rows} == {"ann", "bob"}


def test_live_events_change_the_list(bundle):
    folder, b = bundle
    rec = EdgeRecommender(b)
    cold = rec.recommend_user("new-person", k=3)
    assert len(cold) == 3
    rec.add_event("new-person", 104)
    rec.add_event("new-person", "105")  # ids typed as text are matched too
    after = rec.recommend_user("new-person", k=3)
    assert after == rec.recommend([104, 105], k=3) and after != cold
    assert {104, 105}.isdisjoint(i for i, _ in after)
    from lmrec.data.sequences import Sequences
    from lmrec.runs import Run

    run = Run.open(folder / "run")
    want, _ = run.load_model().recommend(Sequences.from_lists([run.dataset.items.lookup([104, 105])]), 3)
    assert [i for i, _ in after] == run.dataset.items.decode(want[0])
    with pytest.raises(EdgeError, match="unknown item_id 'nope'"):
        rec.add_event("new-person", "nope")


def test_damaged_bundles_are_refused(bundle, tmp_path):
    _, b = bundle
    with pytest.raises(EdgeError, match="not an edge bundle"):
        EdgeRecommender(tmp_path)
    altered = _copy(b, tmp_path / "altered")
    data = bytearray((altered / "tables" / "table.npy").read_bytes())
    data[-1] ^= 0xFF
    (altered / "tables" / "table.npy").write_bytes(bytes(data))
    with pytest.raises(EdgeError, match="table.npy: checksum mismatch"):
        EdgeRecommender(altered)
    missing = _copy(b, tmp_path / "missing")
    (missing / "tables" / "table.npy").unlink()
    with pytest.raises(EdgeError, match="table.npy: missing from the bundle"):
        EdgeRecommender(missing)
    future = _copy(b, tmp_path / "future")
    manifest = json.loads((future / "manifest.json").read_text())
    (future / "manifest.json").write_text(json.dumps(manifest | {"version": 99}))
    with pytest.raises(EdgeError, match="version 99"):
        EdgeRecommender(future)


def test_cli_errors_are_one_line(bundle, tmp_path, capsys):
    folder, b = bundle
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item\n1,103\n")
    assert main(["--bundle", str(b), "--events", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    assert "no column 'user_id' (columns: user, item); name it with --user-col" in capsys.readouterr().err
    bad.write_text("user_id,item_id,timestamp\n1,103,yesterday\n")
    assert main(["--bundle", str(b), "--events", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    assert "row 1, column 'timestamp': expected a number, got 'yesterday'" in capsys.readouterr().err
    not_items = tmp_path / "x.npz"
    np.savez(not_items, something=np.zeros(3))
    assert main(["--bundle", str(b), "--events", str(folder / "events.csv"), "--output", str(tmp_path / "o.csv"),
                 "--new-items", str(not_items)]) == 2
    assert "not a new-items file" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
