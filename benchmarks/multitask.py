"""Sparse-user ablation of training-time additions to a sequence model (``--model``, SASRec by default) with
no config (what a user gets):
auxiliary like / category / item_category heads (multitask) and an L1 penalty on the user states (interests.state_l1).

Leave-one-out, full ranking, seen items excluded. Besides the usual test NDCG@10, every model is
also judged with each user's history cut to its last 5 events (``read_last=5``; MovieLens has no
users with <= 5 events under leave-one-out, so this is how a sparse user is simulated there; seen
items are still the whole history). Choices are read on the validation columns.

    python benchmarks/multitask.py --minutes 4 --threads 1   # ml-100k, every variant, seeds 0-2
    python benchmarks/multitask.py --data ml-1m --variants none category --seeds 0
    python benchmarks/multitask.py --data beauty --category-vectors "$(python benchmarks/beauty_attributes.py)"
    python benchmarks/multitask.py --data beauty --variants none "state-l1 0.1" "state-l1 1" --minutes 8
    python benchmarks/multitask.py --data beauty --model sasrec-text --variants none item_category --category-vectors F
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import append_jsonl, machine, result_options, table_only

from lmrec.data import load_dataset
from lmrec.data.splits import TEST, TRAIN, VALID, LeaveOneOutConfig, make_split
from lmrec.evaluation import EvalConfig, Validator, evaluate
from lmrec.models import create_model
from lmrec.pipeline import seed_everything
from lmrec.training.multitask import MultiTask, MultiTaskConfig, item_categories
from lmrec.training.regularisers import StateL1

VARIANTS = {
    "none": {},
    "like": {"tasks": ["like"]},
    "category": {"tasks": ["category"]},
    # The category head's weight (0.5 above, the config's default), searched on validation.
    **{f"category {w:g}": {"tasks": ["category"], "category_weight": w} for w in (0.1, 0.25, 1.0, 2.0)},
    # The categories predicted from each item's own vector (S3-Rec's associated-attribute prediction).
    **{f"item_category{f' {w:g}' if w != 0.5 else ''}": {"tasks": ["item_category"], "item_category_weight": w}
       for w in (0.1, 0.25, 0.5, 1.0)},
    "category+item_category": {"tasks": ["category", "item_category"]},
    "like+category": {"tasks": ["like", "category"]},
    "like+category (uncertainty)": {"tasks": ["like", "category"], "weights": "uncertainty"},
    "state-l1 0.1": {"state_l1": 0.1},
    "state-l1 1": {"state_l1": 1.0},
}


def run(dataset: str, variant: str, seed: int, category_vectors: str | None, minutes: float | None,
        model_name: str = "sasrec") -> dict:
    ds = load_dataset(dataset)
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    seed_everything(seed)
    model = create_model(model_name, {}, training={"time_budget": minutes} if minutes else {},
                         runtime={"progress": False})
    model.attach_items(ds.item_info)  # sasrec-text reads the titles; the others ignore them
    options = VARIANTS[variant] | ({"category_vectors": category_vectors} if category_vectors else {})
    if "state_l1" in options:
        model.hooks = [StateL1(options["state_l1"])]
    elif options.get("tasks"):
        cfg = MultiTaskConfig(**options)
        cats = item_categories(ds.item_info, cfg) if cfg.uses_categories() else None
        model.hooks = [MultiTask(cfg, cats)]
    t0 = time.perf_counter()
    model.fit(ds.interactions.subset(labels == TRAIN), Validator(ds.interactions, labels))
    fit_s = time.perf_counter() - t0
    out = {"dataset": dataset, "model": model_name, "variant": variant, "seed": seed, "fit_s": fit_s,
           "epochs": model.train_state.epoch, "auto_choices": model.auto_choices}
    for stage, name in ((VALID, "valid"), (TEST, "test")):
        for read_last, suffix in ((None, ""), (5, "_last5")):
            s = evaluate(model, ds.interactions, labels, stage, EvalConfig(ks=[10], read_last=read_last)).summary()
            out[f"{name}{suffix}"] = s["overall"]["ndcg@10"]
            if read_last is None:
                out[f"{name}_by_history"] = {k: v["ndcg@10"] for k, v in s["by_history"].items()}
    return out


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.4f}" + (f" +- {np.std(values, ddof=1):.4f}" if len(values) > 1 else "")


def _short(r: dict, stage: str) -> float | None:
    """NDCG@10 of users with <= 5 events (None where there are none, as on MovieLens)."""
    return r.get(f"{stage}_by_history", {}).get("<=5")


def table(results: list[dict]) -> str:
    cols = ("valid", "valid_last5", "test", "test_last5")
    lines = ["| dataset | variant | valid NDCG@10 | valid, last 5 events | test NDCG@10 | test, last 5 events | "
             "valid <= 5 events | test <= 5 events | test vs none | last 5 vs none | seeds | fit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in results):
        base = [r for r in results if r["dataset"] == dataset and r["variant"] == "none"]
        for variant in dict.fromkeys(r["variant"] for r in results if r["dataset"] == dataset):
            rs = [r for r in results if r["dataset"] == dataset and r["variant"] == variant]
            rel = ["", ""]
            if base and variant != "none":
                rel = [f"{np.mean([r[c] for r in rs]) / np.mean([r[c] for r in base]) - 1:+.1%}"
                       for c in ("test", "test_last5")]
            short = [[_short(r, stage) for r in rs] for stage in ("valid", "test")]
            short_cells = [_ms(v) if None not in v else "-" for v in short]
            lines.append(f"| {dataset} | {variant} | " + " | ".join(_ms([r[c] for r in rs]) for c in cols)
                         + f" | {' | '.join(short_cells)} | {rel[0]} | {rel[1]} | {len(rs)} | "
                         f"{np.mean([r['fit_s'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--model", default="sasrec", choices=["sasrec", "sasrec-text", "dnn"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--category-vectors", help="per-item multi-hot file for the category head (Beauty attributes)")
    ap.add_argument("--minutes", type=float, help="time budget of each fit (default: the automatic one); the "
                    "cosine schedule is fitted to it, so every variant gets the same compute")
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        return
    results = []
    for seed in args.seeds:
        for variant in args.variants:
            r = run(args.data, variant, seed, args.category_vectors, args.minutes, args.model)
            results.append(r)
            print(f"{variant} seed {seed}: valid {r['valid']:.4f} test {r['test']:.4f} last5 {r['test_last5']:.4f} "
                  f"({r['fit_s']:.0f} s)", flush=True)
            append_jsonl(args.jsonl, r)
    print(f"\nmachine: {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
