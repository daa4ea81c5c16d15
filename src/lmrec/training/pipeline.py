"""``train``: load -> process -> split -> fit (early stopping on validation) -> evaluate -> refit -> save."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

import lmrec
from lmrec.config import RunConfig
from lmrec.data import DATASETS, ProcessingConfig, load_dataset
from lmrec.data.splits import TEST, TRAIN, VALID, make_split
from lmrec.evaluation.evaluator import Validator, evaluate
from lmrec.evaluation.report import write_report
from lmrec.models.base import validate_config
from lmrec.models.registry import get_model_class
from lmrec.runs import write_run


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict  # test metrics of the model trained on the training part
    timings: dict[str, float]
    dataset_stats: dict


def train_run(source: str | Path, model_name: str, out: str | Path, config: RunConfig | None = None, *,
              items: str | Path | None = None, overwrite: bool = False, log=print) -> TrainResult:
    """Train ``model_name`` on ``source`` (dataset name or interactions file) into run directory ``out``."""
    config = config or RunConfig()
    klass = get_model_class(model_name)
    model_config = validate_config(klass.Config, config.model, f"config 'model' section for {model_name!r}")
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    processing = config.data.processing
    if klass.uses_item_content and (processing is None or processing.keep_unseen_items is None):
        base = processing or (DATASETS[str(source)].processing if str(source) in DATASETS else ProcessingConfig())
        processing = base.model_copy(update={"keep_unseen_items": True})
    dataset = load_dataset(source, items=items, columns=config.data.columns, processing=processing,
                           item_id_column=config.data.item_id_column)
    stats = dataset.describe()
    labels = make_split(dataset.interactions, config.split)
    timings["load_s"] = time.perf_counter() - t0
    log(f"data: {stats['users']:,} users, {stats['items']:,} items, {stats['events']:,} events "
        f"(density {stats['density']:.4%}); split {config.split.kind}: "
        f"{(labels == TRAIN).sum():,} train / {(labels == VALID).sum():,} valid / {(labels == TEST).sum():,} test events")
    for step, removed in dataset.report.steps:
        log(f"  processing removed {removed:,} events: {step}")

    seed_everything(config.train.seed)
    t0 = time.perf_counter()
    eval_model = klass(model_config)
    eval_model.attach_items(dataset.item_info)
    eval_model.fit(dataset.interactions.subset(labels == TRAIN), Validator(dataset.interactions, labels))
    timings["fit_s"] = time.perf_counter() - t0
    for note in eval_model.fit_notes():
        log(note)

    t0 = time.perf_counter()
    result = evaluate(eval_model, dataset.interactions, labels, TEST, config.evaluation, progress=True)
    summary = result.summary()
    timings["evaluate_s"] = time.perf_counter() - t0

    models = {"model": eval_model}
    if config.train.refit:
        seed_everything(config.train.seed)
        t0 = time.perf_counter()
        final = klass(eval_model.refit_config())
        final.attach_items(dataset.item_info)
        final.fit(dataset.interactions)  # every event; epochs fixed by what validation chose
        timings["refit_s"] = time.perf_counter() - t0
        models = {"model": final, "model-eval": eval_model}

    meta = {
        "lmrec_version": lmrec.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model_name,
        "data": {"name": dataset.name, "source": str(source), "items": str(items) if items else None},
        "dataset": stats,
        "config": config.model_dump(mode="json") | {"model": model_config.model_dump(mode="json")},
        "timings": timings,
    }
    out = write_run(Path(out), meta=meta, dataset=dataset, labels=labels, models=models, overwrite=overwrite)
    write_report(out, summary, title=f"{model_name} on {dataset.name}", context=report_context(meta))
    return TrainResult(out, summary, timings, stats)


def report_context(meta: dict) -> dict:
    split = meta["config"]["split"]
    return {
        "model": meta["model"],
        "dataset": f"{meta['data']['name']} ({meta['dataset']['users']:,} users, {meta['dataset']['items']:,} items, "
                   f"{meta['dataset']['events']:,} events)",
        "split": split["kind"],
        "seen items excluded": meta["config"]["evaluation"]["exclude_seen"],
        "created": meta["created"],
    }
