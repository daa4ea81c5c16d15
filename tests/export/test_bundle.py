"""lmrec export: a bundle per exportable model whose top-10 equals the model's (the runtime is
lmrec.edge), int8 bundles within quantisation error, items added after export."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.config import RunConfig
from lmrec.data.sequences import Sequences
from lmrec.edge import EdgeRecommender
from lmrec.errors import RunError
from lmrec.export.bundle import export_bundle
from lmrec.pipeline import train_run
from lmrec.runs import Run
from tests.conftest import make_events, make_items, tiny_run

pytest.importorskip("onnxscript", reason="lmrec export needs the export extra: pip install 'lmrec[export]'")


@pytest.fixture(scope="module")
def sasrec_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sasrec")
    tiny_run(folder, "sasrec")
    return folder / "run"


def _train(folder: Path, model: str, sections: dict | None = None) -> Path:
    make_events().write_csv(folder / "events.csv")
    make_items().write_csv(folder / "items.csv")
    config = RunConfig.model_validate({"runtime": {"progress": False}, "training": {"epochs": 3}} | (sections or {}))
    train_run(folder / "events.csv", model, folder / "run", config, items=folder / "items.csv", log=lambda *_: None)
    return folder / "run"


def _same_as_model(run_dir: Path, bundle: Path) -> None:
    run = Run.open(run_dir)
    users = np.arange(run.dataset.interactions.n_users)
    histories = run.histories(users)
    want_items, want_scores = run.load_model().recommend(histories, 10)
    got_items, got_scores = EdgeRecommender(bundle).recommend_indices([histories[u] for u in users], 10)
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-4, atol=1e-5)
    # Lists may only differ where scores tie (popularity counts).
    differ = (got_items != want_items).any(axis=1)
    assert not differ.any() or run.model_name == "pop"


def test_sasrec_bundle_reproduces_the_model_and_records_its_parity(sasrec_run, tmp_path):
    manifest = export_bundle(Run.open(sasrec_run), tmp_path / "b", log=lambda *_: None)
    assert manifest["parity"]["top_k_equal"] == 1.0 and manifest["parity"]["users"] == 30
    assert manifest["max_len"] == 10 and manifest["inputs"] == ["tokens", "table"]
    on_disk = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert set(on_disk["files"]) == {"encoder.onnx", "items.json", "tables/table.npy"}
    assert on_disk["items"] == {"table": "table", "rows_from": 1}  # tied: the table is stored once
    _same_as_model(sasrec_run, tmp_path / "b")
    # No user ids or histories travel with the model.
    text = b"".join(p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert b"u17" not in text and b"u0" not in text


@pytest.mark.parametrize("model", ["dnn", "ease", "itemknn", "pop", "text-knn"])
def test_every_exportable_family_reproduces_its_model(model, tmp_path):
    sections = {"model": {"d_model": 16}} if model == "dnn" else {}
    run_dir = _train(tmp_path, model, sections)
    manifest = export_bundle(Run.open(run_dir), tmp_path / "b", log=lambda *_: None)
    assert manifest["parity"]["top_k_equal"] == 1.0
    _same_as_model(run_dir, tmp_path / "b")


def test_history_longer_than_the_window_and_empty_history(sasrec_run, tmp_path):
    export_bundle(Run.open(sasrec_run), tmp_path / "b", log=lambda *_: None)
    run = Run.open(sasrec_run)
    model, edge = run.load_model(), EdgeRecommender(tmp_path / "b")
    long = np.arange(20)[::-1] % 20  # 20 events, the network reads the last 10; all 20 are excluded
    histories = Sequences.from_lists([long, np.array([], dtype=np.int64)])
    want, _ = model.recommend(histories, 5)
    got, _ = edge.recommend_indices([long, np.array([], dtype=np.int64)], 5)
    np.testing.assert_array_equal(got, want)
    assert (got[0] == -1).all()  # every item seen: nothing left to recommend


def test_int8_bundle_is_smaller_and_close(sasrec_run, tmp_path):
    run = Run.open(sasrec_run)
    fp32 = export_bundle(run, tmp_path / "fp32", log=lambda *_: None)
    int8 = export_bundle(run, tmp_path / "int8", int8=True, log=lambda *_: None)
    assert int8["tables"]["table"]["dtype"] == "int8"
    size = {m: (tmp_path / m / "tables" / ("table.npy" if m == "fp32" else "table.int8.npy")).stat().st_size
            for m in ("fp32", "int8")}
    assert size["int8"] < size["fp32"] / 2.5  # 1 byte per value instead of 4, plus the .npy header
    assert int8["parity"]["max_abs_score_diff"] > 0  # really quantised
    assert int8["parity"]["max_abs_score_diff"] < 0.05 * np.abs(
        EdgeRecommender(tmp_path / "fp32").recommend_indices([np.array([1, 2, 3])], 10)[1]).max()
    assert fp32["parity"]["top_k_equal"] == 1.0


def test_items_added_after_export_score_as_in_the_model(tmp_path):
    run_dir = _train(tmp_path, "text-knn")
    export_bundle(Run.open(run_dir), tmp_path / "b", log=lambda *_: None)
    new = tmp_path / "new.csv"
    new.write_text("item_id,title,category\n900,Item number 3 again,odd\n901,Something else entirely,even\n")
    result = CliRunner().invoke(app, ["export-items", "--run", str(run_dir), "--items", str(new),
                                      "--out", str(tmp_path / "new.npz")])
    assert result.exit_code == 0, result.output
    edge = EdgeRecommender(tmp_path / "b")
    assert edge.add_items(tmp_path / "new.npz") == 2
    run = Run.open(run_dir)
    model = run.load_model()
    model.add_items(pl.DataFrame({"item": [900, 901], "title": ["Item number 3 again", "Something else entirely"],
                                  "category": ["odd", "even"]}))
    history = [run.dataset.items.index(103)]
    want_items, want_scores = model.recommend(Sequences.from_lists([history]), 22)
    got = edge.recommend([103], k=22)
    ids = [*run.dataset.items.ids, 900, 901]
    assert [i for i, _ in got] == [ids[j] for j in want_items[0] if j >= 0]
    np.testing.assert_allclose([s for _, s in got], want_scores[0][want_items[0] >= 0], rtol=1e-4, atol=1e-5)
    assert 900 in [i for i, _ in got[:3]]  # its text is closest to the history's


def test_export_refuses_clashing_items_and_foreign_directories(sasrec_run, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export", "--run", str(sasrec_run), "--out", str(tmp_path / "other")])
    assert result.exit_code == 2 and "is not an edge bundle" in result.output
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    result = CliRunner().invoke(app, ["export", "--run", str(sasrec_run), "--out", str(tmp_path / "b"),
                                      "--format", "tflite"])
    assert result.exit_code == 2 and "only bundle format is 'onnx'" in result.output
    new = tmp_path / "new.csv"
    new.write_text("item_id,title\n103,already there\n")
    result = CliRunner().invoke(app, ["export-items", "--run", str(sasrec_run), "--items", str(new),
                                      "--out", str(tmp_path / "n.npz")])
    assert result.exit_code == 2 and "represents items by their events only" in result.output


def test_cli_export_prints_the_parity(sasrec_run, tmp_path):
    result = CliRunner().invoke(app, ["export", "--run", str(sasrec_run), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "equal to the model's for 100.0% of 30 users" in " ".join(result.output.split())


def test_models_without_an_export_are_refused():
    from lmrec.export.bundle import _parts
    from lmrec.models.interest import Interest

    with pytest.raises(RunError, match="has no edge export"):
        _parts(Interest())
