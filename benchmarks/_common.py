"""Shared helpers for benchmark scripts: run one (dataset, model, config), print markdown tables."""

from __future__ import annotations

import json
import platform
import time

import numpy as np
import torch

from lmrec.data import load_dataset
from lmrec.data.splits import TEST, TRAIN, VALID, LeaveOneOutConfig, make_split
from lmrec.evaluation import EvalConfig, Validator, evaluate
from lmrec.models import create_model, get_model_class
from lmrec.models.sequential import SequentialRecommender
from lmrec.pipeline import seed_everything
from lmrec.training.config import TrainingConfig

# Library defaults before the ninth session, when these settings became "auto". The frozen
# configs were measured on top of them, so they are pinned here and keep meaning what they meant.
LEGACY_MODEL = {"max_len": 200, "d_model": 64, "dropout": 0.2, "n_heads": 2, "block": "pre_ln", "id_shrinkage": 0.0}
LEGACY_TRAINING = {"epochs": 200, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0, "lr_schedule": "constant",
                   "warmup_steps": 0, "patience": 10, "eval_every": 1, "valid_users": None, "time_budget": 10_000}


def append_jsonl(path, row: dict) -> None:
    """Append ``row`` as one JSON line to ``path`` (nothing when ``path`` is None): a run's result
    survives the script being stopped before its table."""
    if path is not None:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def result_options(ap) -> None:
    """--threads, --jsonl (append each result) and --table (print an earlier --jsonl's table)."""
    from pathlib import Path

    ap.add_argument("--threads", type=int, help="torch threads (1: run several lanes side by side)")
    ap.add_argument("--jsonl", type=Path, help="append each result here")
    ap.add_argument("--table", type=Path, nargs="+", help="only print the table of earlier --jsonl files")


def table_only(args, table) -> bool:
    """Print ``table`` of the results in ``args.table``'s files and return True, or set the threads and return False."""
    if args.table:
        print(table([json.loads(line) for f in args.table for line in f.read_text().splitlines() if line.strip()]))
        return True
    if args.threads:
        torch.set_num_threads(args.threads)
    return False


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def frozen(model: str, flat: dict) -> tuple[dict, dict]:
    """(model config, training config) of a frozen config written as one flat dict of options
    (``max_train_minutes``: the fit's time budget), with the legacy defaults filled in."""
    klass = get_model_class(model)
    fields = klass.Config.model_fields
    flat = dict(flat)
    if "max_train_minutes" in flat:  # it bounded each fit; time_budget bounds fit() with its lagged judge
        judge = flat.get("text_knn_weight") == "lagged" and flat.get("fusion", "fused") != "id"
        flat["time_budget"] = flat.pop("max_train_minutes") * (2 if judge else 1)
    training = {k: flat.pop(k) for k in list(flat) if k in TrainingConfig.model_fields}
    model_cfg = {k: v for k, v in LEGACY_MODEL.items() if k in fields and fields[k].default == "auto"} | flat
    return model_cfg, (LEGACY_TRAINING | training if issubclass(klass, SequentialRecommender) else {})


def run_one(dataset: str, model: str, config: dict | None = None, seed: int = 0,
            split: LeaveOneOutConfig | None = None, test: bool = True, augmentation=None,
            auto: bool = False) -> dict:
    """Leave-one-out, full ranking, seen excluded: the protocol of the published numbers. ``config``
    is a frozen flat config (see ``frozen``); the fit gets its ``max_train_minutes`` as budget.
    ``test=False``: fit only (screens that choose on validation never see a test number).
    ``augmentation``: a ``lmrec.augment.plan.Augmenter`` the fit runs (inside its budget).
    ``auto``: no frozen config: every setting "auto" (what a user without a config gets), the fit's
    budget ``config["max_train_minutes"]`` if given."""
    ds = load_dataset(dataset)
    labels = make_split(ds.interactions, split or LeaveOneOutConfig())
    seed_everything(seed)
    t0 = time.perf_counter()
    if auto:
        minutes = (config or {}).get("max_train_minutes")
        model_cfg, training = {}, ({"time_budget": minutes} if minutes else {})
    else:
        model_cfg, training = frozen(model, config or {})
    m = create_model(model, model_cfg, training=training, runtime={"progress": False})
    m.attach_items(ds.item_info)
    m.augmentation = augmentation
    m.fit(ds.interactions.subset(labels == TRAIN), Validator(ds.interactions, labels))
    fit_s = time.perf_counter() - t0
    if not test:
        return {"dataset": dataset, "model": model, "fit_s": fit_s, "fitted": m}
    t0 = time.perf_counter()
    summary = evaluate(m, ds.interactions, labels, TEST, EvalConfig(ks=[10])).summary()
    eval_s = time.perf_counter() - t0
    valid = evaluate(m, ds.interactions, labels, VALID, EvalConfig(ks=[10])).summary()
    return {"dataset": dataset, "model": model, "fit_s": fit_s, "eval_s": eval_s, "summary": summary,
            "valid_summary": valid, "fitted": m}


def markdown_rows(results: list[dict]) -> str:
    head = ("| dataset | model | HR@10 | NDCG@10 | NDCG@10 hist<=5 | 6-20 | >20 | NDCG@10 head | tail | cold "
            "| HR@10 head | tail | fit s | eval s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        label = r.get("label", r["model"])
        s = r["summary"]

        def v(group, bucket, metric="ndcg@10", s=s):
            x = s[group][bucket].get(metric)
            return "-" if x is None or np.isnan(x) else f"{x:.4f}"

        lines.append(
            f"| {r['dataset']} | {label} | {s['overall']['hr@10']:.4f} | {s['overall']['ndcg@10']:.4f} "
            f"| {v('by_history', '<=5')} | {v('by_history', '6-20')} | {v('by_history', '>20')} "
            f"| {v('by_popularity', 'head')} | {v('by_popularity', 'tail')} | {v('by_popularity', 'cold')} "
            f"| {v('by_popularity', 'head', 'hr@10')} | {v('by_popularity', 'tail', 'hr@10')} "
            f"| {r['fit_s']:.1f} | {r['eval_s']:.1f} |")
    return "\n".join(lines)
