"""``lmrec compress``: a smaller copy of a run, as a normal run directory.

``int8`` / ``bf16``: post-training quantisation of the stored arrays of both models (the served
one and the evaluated one), restored to float32 on load (``lmrec.models.storage``); compute stays
float32 in torch, and int8 compute is what an ``lmrec export --int8`` bundle runs.
``prune``: magnitude pruning of the network's weight matrices at a chosen sparsity, each layer to
that sparsity (``structured``: whole feed-forward hidden units and attention heads instead), then
(``fine_tune_epochs``) a short fine-tune with the pruned weights held at zero: the evaluated
model on the training part with validation choosing the epoch, the served model on every event
for that many epochs. Pruned weights are stored as zeros; with ``storage`` they are
also quantised.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from lmrec.data.splits import TRAIN
from lmrec.errors import RunError
from lmrec.evaluation.evaluator import Validator
from lmrec.models.base import Recommender
from lmrec.models.sequential import NeuralRecommender
from lmrec.models.storage import METHODS as STORAGE_METHODS
from lmrec.training.pruning import PruningMasks, apply_masks, magnitude_masks, sparsity_of, structured_masks

METHODS = (*STORAGE_METHODS, "prune")
MODEL_DIRS = ("model-eval", "model")  # evaluated first: its fine-tune chooses the served model's epochs


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _prune(model: Recommender, sparsity: float, structured: bool, data, valid, epochs: int,
           budget_s: float | None, log):
    if not isinstance(model, NeuralRecommender):
        raise RunError(f"model {model.name!r} has no weight matrices to prune (neural models: sasrec, sasrec-text, "
                       "dnn); quantise it with --method int8 instead")
    masks = (structured_masks if structured else magnitude_masks)(model.net, sparsity)
    apply_masks(model.net, masks)
    if epochs:
        log(f"fine-tuning {model.name} for up to {epochs} epochs with {sparsity:.0%} of its weight matrices at zero")
        model = model.fine_tune(data, valid, epochs=epochs, hooks=[PruningMasks(masks)], time_budget_s=budget_s)
    return model, sparsity_of(model.net, masks)


def compress_run(run, out: Path, method: str, *, sparsity: float = 0.5, structured: bool = False,
                 fine_tune_epochs: int = 0, storage: str | None = None, time_budget_s: float | None = None,
                 log=print) -> dict:
    """Write the compressed copy of ``run`` at ``out`` (a new directory, renamed into place when
    complete); returns what was done, also recorded as ``compression`` in its run.json."""
    if method not in METHODS:
        raise RunError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    if storage is not None and storage not in STORAGE_METHODS:
        raise RunError(f"--storage {storage!r}: choose one of {', '.join(STORAGE_METHODS)}")
    out = Path(out)
    if out.exists():
        raise RunError(f"{out} already exists; choose a new directory for the compressed run")
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    record = {"method": method, "source": run.path.name, "storage": storage if method == "prune" else method}
    if method == "prune":
        record["structured"] = structured
    try:
        shutil.copytree(run.path, tmp, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("metrics.json", "report.md", "plots"))  # they describe the source
        interactions = run.dataset.interactions
        best_epochs = None
        for sub in MODEL_DIRS:
            if not (run.path / sub).exists():
                continue
            model = Recommender.load(run.path / sub)
            model.runtime = model.runtime.model_copy(update={"progress": False, "checkpoint_dir": None})
            before = _size(run.path / sub)
            if method == "prune":
                evaluated = sub == "model-eval" or not (run.path / "model-eval").exists()
                data = interactions.subset(run.labels == TRAIN) if sub == "model-eval" else interactions
                valid = Validator(interactions, run.labels) if evaluated and fine_tune_epochs else None
                epochs = fine_tune_epochs if evaluated or best_epochs is None else best_epochs
                model, achieved = _prune(model, sparsity, structured, data, valid, epochs, time_budget_s, log)
                record[sub] = {"sparsity": round(achieved, 4)}
                if fine_tune_epochs:
                    if valid is not None:
                        best_epochs = epochs = max(1, model.train_state.best_epoch)
                    record[sub]["fine_tune_epochs"] = epochs
            shutil.rmtree(tmp / sub)
            model.save(tmp / sub, storage=record["storage"])
            record.setdefault(sub, {}).update({"bytes_before": before, "bytes_after": _size(tmp / sub)})
        record["seconds"] = round(time.perf_counter() - started, 1)
        meta = json.loads((tmp / "run.json").read_text())
        meta["compression"] = record
        (tmp / "run.json").write_text(json.dumps(meta, indent=2))
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record


def item_table_bytes(model_dir: Path) -> int:
    """Bytes the stored item table takes (the arrays whose first axis is the catalogue)."""
    from safetensors.numpy import load_file

    meta = json.loads((model_dir / "config.json").read_text())
    n = int(meta["n_items"])
    arrays = load_file(model_dir / "weights.safetensors")
    return int(sum(a.nbytes for a in arrays.values() if a.ndim >= 1 and a.shape[0] in (n, n + 1)))

