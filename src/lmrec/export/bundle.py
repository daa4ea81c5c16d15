"""``lmrec export``: a run's served model as an edge bundle that runs without torch.

    BUNDLE/
      manifest.json      format, model, inputs, array files, sha256 of every file, parity measured at export
      encoder.onnx       the query network: tokens (B, L) [+ per-token tables] -> query (B, D)
      tables/NAME.npy    per-token tables the graph reads (row 0: padding); int8 + NAME.scale.npy with --int8
      items.npy          (n_items, D) item vectors: scores = query @ items.T (int8 + scale with --int8;
                         none for tied models, whose item vectors are their table's rows)
      items.json         original item ids in index order

The runtime is :mod:`lmrec.edge` (numpy + onnxruntime). The bundle holds no user ids and no
histories: a device recommends from the events it has. ``export_new_items`` writes the rows of
items added after export (content models) for a device to append.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import torch

from lmrec.data.readers import read_items
from lmrec.edge import sha256
from lmrec.edge.quantise import quantise_rows
from lmrec.errors import ConfigError, DataValidationError, RunError
from lmrec.models.base import EdgeExportable, Recommender
from lmrec.models.edge import EdgeParts

FORMAT = "lmrec-edge"
VERSION = 1
MANIFEST = "manifest.json"
PARITY_USERS = 1000


def _need(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(f"exporting needs {module}: pip install 'lmrec[export]'") from None


def _parts(model: Recommender) -> EdgeParts:
    if not isinstance(model, EdgeExportable):
        raise RunError(f"model {model.name!r} has no edge export (exportable: sasrec, sasrec-text, dnn, text-knn, "
                       "ease, itemknn, pop)")
    return model.edge_parts()


def _export_graph(parts: EdgeParts, path: Path, opset: int) -> None:
    """The query network as ONNX with a dynamic batch, history length and catalogue size."""
    names = list(parts.tables)
    L_max = max(2, parts.max_len or 1_000_000)  # a dimension needs a range, even where one token is read
    example_len = min(8, L_max)
    tokens = torch.ones(2, example_len, dtype=torch.long)  # (B, L) every slot a real item
    tables = tuple(torch.from_numpy(parts.tables[n]) for n in names)
    batch, length = torch.export.Dim("batch", min=1), torch.export.Dim("length", min=1, max=L_max)
    shapes = {"tokens": {0: batch, 1: length}} | {n: {0: torch.export.Dim(f"{n}_rows", min=2)} for n in names}
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)  # the exporter logs every optional operator set it skips
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            parts.encoder.eval()
            torch.onnx.export(parts.encoder, (tokens, *tables), str(path), dynamo=True, opset_version=opset,
                              input_names=["tokens", *names], output_names=["query"], dynamic_shapes=shapes,
                              verbose=False, optimize=True, external_data=False)
    finally:
        onnx_log.setLevel(level)


def _save_array(root: Path, stem: str, rows: np.ndarray, int8: bool) -> dict:
    """``rows`` as ``root/stem.npy``, or as int8 rows with a float32 scale per row; its manifest entry."""
    (root / stem).parent.mkdir(parents=True, exist_ok=True)
    if not int8:
        np.save(root / f"{stem}.npy", np.ascontiguousarray(rows, dtype=np.float32))
        return {"file": f"{stem}.npy", "dtype": "float32"}
    q, scale = quantise_rows(rows)
    np.save(root / f"{stem}.int8.npy", q)
    np.save(root / f"{stem}.scale.npy", scale)
    return {"file": f"{stem}.int8.npy", "scale": f"{stem}.scale.npy", "dtype": "int8"}


def _quantise_graph(path: Path) -> None:
    """int8 weights for the graph's matrix products (onnxruntime's dynamic quantisation)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = path.with_name("encoder.fp32.onnx")
    path.rename(fp32)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # it advises pre-processing on the root logger, meant for image models
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    fp32.unlink()


def export_bundle(run, out: Path, *, int8: bool = False, opset: int = 18, parity_users: int = PARITY_USERS,
                  which: str = "final", log=print) -> dict:
    """Write ``run``'s served model (``which="eval"``: the evaluated one, for benchmarks on the
    test split) as a bundle at ``out`` (replaced whole, atomically); returns the manifest, whose
    ``parity`` compares the bundle's top-10 with the model's on sample users."""
    _need("onnx")
    _need("onnxscript")
    _need("onnxruntime")
    out = Path(out)
    if out.exists() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise RunError(f"{out} exists and is not an edge bundle; choose an empty or new directory")
    started = time.perf_counter()
    model = run.load_model(which)
    parts = _parts(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        log(f"exporting {model.name} ({model.n_items:,} items) to ONNX (opset {opset})")
        _export_graph(parts, tmp / "encoder.onnx", opset)
        if int8:
            _quantise_graph(tmp / "encoder.onnx")
        tables = {n: _save_array(tmp, f"tables/{n}", rows, int8) for n, rows in parts.tables.items()}
        # Tied models (sasrec) score with their input table: store it once.
        tied = next((n for n, rows in parts.tables.items() if rows[1:].shape == parts.items.shape
                     and np.array_equal(rows[1:], parts.items)), None)
        items = {"table": tied, "rows_from": 1} if tied else _save_array(tmp, "items", parts.items, int8)
        (tmp / "items.json").write_text(json.dumps(list(run.dataset.items.ids)))
        manifest = {
            "format": FORMAT, "version": VERSION, "model": model.name, "run": run.path.name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "opset": opset, "int8": int8,
            "trained_on": "the training part" if which == "eval" and (run.path / "model-eval").exists()
            else "every event",
            "n_items": int(model.n_items), "max_len": parts.max_len, "encoder": "encoder.onnx",
            "inputs": ["tokens", *parts.tables], "tables": tables, "items": items, "vocabulary": "items.json",
        }
        _write_manifest(tmp, manifest)
        if parity_users:
            manifest["parity"] = measure_parity(run, model, tmp, parity_users)
            _write_manifest(tmp, manifest)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["seconds"] = round(time.perf_counter() - started, 1)
    return manifest


def _write_manifest(folder: Path, manifest: dict) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest["files"] = {p.relative_to(folder).as_posix(): sha256(p) for p in files}
    manifest["size_bytes"] = sum(p.stat().st_size for p in files)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def measure_parity(run, model: Recommender, bundle: Path, users: int, k: int = 10) -> dict:
    """Top-k of the bundle vs the model for up to ``users`` users (evenly spaced over the index,
    whole histories, seen items excluded). A user matches when the two lists are equal, or differ
    only in the order of tied scores (popularity counts tie often)."""
    from lmrec.edge import EdgeRecommender

    n = run.dataset.interactions.n_users
    idx = np.unique(np.linspace(0, n - 1, min(users, n)).astype(np.int64))
    histories = run.histories(idx)
    torch_top, torch_scores = model.recommend(histories, k)
    edge = EdgeRecommender(bundle)
    edge_top, edge_scores = edge.recommend_indices([histories[r] for r in range(len(idx))], k)
    same = (torch_top == edge_top).all(axis=1)
    finite = np.isfinite(torch_scores) & np.isfinite(edge_scores)
    diff = np.abs(np.where(finite, torch_scores - edge_scores, 0.0))
    scale = np.maximum(np.abs(np.where(finite, torch_scores, 0.0)), 1e-6)
    # Equal scores at every rank: where the items differ, they were tied (both sides score with the same vectors).
    tied = (diff <= 1e-5 * scale + 1e-6).all(axis=1) & (np.isfinite(torch_scores) == np.isfinite(edge_scores)).all(1)
    return {"users": len(idx), "k": k, "top_k_equal": float(np.mean(same | tied)),
            "max_abs_score_diff": float(diff.max()) if diff.size else 0.0,
            "mean_abs_score_diff": float(diff.mean()) if diff.size else 0.0}


def export_new_items(run, items_file: Path, out: Path) -> int:
    """Rows of items that are not in the run, for a bundle to append (content models): the
    per-token table rows and item vectors the served model gives them, as an .npz."""
    model = run.load_model()
    if not model.uses_item_content:
        raise RunError(f"model {model.name!r} represents items by their events only; new items need a content "
                       "model (text-knn, sasrec-text)")
    info = read_items(items_file, run.config.data.item_id_column)
    known = run.dataset.items
    clash = [i for i in info["item"].to_list() if i in known]
    if clash:
        raise DataValidationError(f"{len(clash)} item id(s) are already in the run, e.g. {clash[:5]}",
                                  path=items_file, column="item_id")
    old = run.dataset.item_info
    if old is not None:
        info = pl.DataFrame({c: info[c] if c in info.columns else None for c in old.columns}).cast(
            dict(old.schema), strict=False)
    n_old = model.n_items
    model.add_items(info)
    parts = _parts(model)
    arrays = {f"table.{n}": rows[n_old + 1 :] for n, rows in parts.tables.items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez(tmp, ids=np.array([str(i) for i in info["item"].to_list()]), items=parts.items[n_old:], **arrays)
    tmp.replace(out)
    return len(info)
