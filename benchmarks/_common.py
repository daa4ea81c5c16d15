"""Shared helpers for benchmark scripts: run one (dataset, model, config), print markdown tables."""

from __future__ import annotations

import platform
import time

import numpy as np
import torch

from lmrec.data import load_dataset
from lmrec.data.splits import TEST, TRAIN, LeaveOneOutConfig, make_split
from lmrec.evaluation import EvalConfig, Validator, evaluate
from lmrec.models import create_model
from lmrec.pipeline import seed_everything


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def run_one(dataset: str, model: str, config: dict | None = None, seed: int = 0,
            split: LeaveOneOutConfig | None = None) -> dict:
    """Leave-one-out, full ranking, seen excluded: the protocol of the published numbers."""
    ds = load_dataset(dataset)
    labels = make_split(ds.interactions, split or LeaveOneOutConfig())
    seed_everything(seed)
    t0 = time.perf_counter()
    m = create_model(model, config)
    m.attach_items(ds.item_info)
    m.fit(ds.interactions.subset(labels == TRAIN), Validator(ds.interactions, labels))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = evaluate(m, ds.interactions, labels, TEST, EvalConfig(ks=[10])).summary()
    return {"dataset": dataset, "model": model, "fit_s": fit_s, "eval_s": time.perf_counter() - t0,
            "summary": summary, "fitted": m}


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
