"""Sparse interest codes of trained runs: sparsity and how much of the dense model's NDCG@10
recommendations from the codes alone keep.

Fits the codes on a run's evaluated model (trained on the split's training part) with the same
``evaluate_codes`` that ``lmrec train`` calls: k chosen on validation (the smallest of the grid
keeping 95% of the dense validation NDCG@10), test read once. ``--max-seconds`` defaults to what
a run with the default 24-minute budget gives each fit (4%: 57.6 s); ``--set`` screens other
settings (on validation: choices are read there).

    python benchmarks/interest_codes.py --run runs/ml-1m-sasrec --run runs/beauty-sasrec
    python benchmarks/interest_codes.py --run runs/ml-1m-sasrec --set atoms=256 --set active_grid=[8,16]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import append_jsonl, machine, result_options, table_only

from lmrec.config import RunConfig
from lmrec.data.splits import TEST, TRAIN, VALID
from lmrec.evaluation import EvalConfig, Validator, evaluate
from lmrec.pipeline import CODES_SHARE, evaluate_codes, seed_everything
from lmrec.runs import Run
from lmrec.training.auto import DEFAULT_BUDGET_MINUTES


def run(path: Path, overrides: dict, seed: int) -> dict:
    r = Run.open(path)
    model = r.load_model("eval")
    inter = r.dataset.interactions
    train = inter.subset(r.labels == TRAIN)
    interests = {"max_seconds": CODES_SHARE * DEFAULT_BUDGET_MINUTES * 60} | overrides
    config = RunConfig.model_validate({"interests": interests, "evaluation": {"ks": [10]},
                                       "training": {"seed": seed}})
    dense = evaluate(model, inter, r.labels, TEST, EvalConfig(ks=[10])).summary()
    seed_everything(seed)
    _, out = evaluate_codes(model, dense, train, r.dataset, r.labels,
                            Validator(inter, r.labels) if (r.labels == VALID).any() else None, config, print)
    return {"run": str(path), "dataset": r.dataset.name, "model": r.model_name, "seed": seed,
            "settings": config.interests.model_dump(mode="json"), "overrides": overrides} | out


def table(results: list[dict]) -> str:
    lines = ["| dataset | model | settings | atoms | k (valid) | atoms per user | valid kept (per k) | "
             "test NDCG@10 dense | from the code | kept | <=5 events kept | fit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d, s = r["test"]["dense"], r["test"]["sparse"]
        short = f"{s['<=5'] / d['<=5']:.1%}" if d.get("<=5") else "-"
        valid = ", ".join(f"{k}: {v:.1%}" for k, v in r.get("valid_keep", {}).items())
        lines.append(f"| {r['dataset']} | {r['model']} | {json.dumps(r['overrides']) if r['overrides'] else 'default'} "
                     f"| {r['live_atoms']} of {r['atoms']} live | {r['active']} | {r['atoms_per_user']:.1f} | {valid} "
                     f"| {d['all']:.4f} | {s['all']:.4f} | {r['test_keep']:.1%} | {short} | {r['fit']['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, action="append", required=True, help="a run directory (repeatable)")
    ap.add_argument("--set", action="append", default=[], help="interests setting KEY=JSON_VALUE (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    result_options(ap)
    args = ap.parse_args()
    if table_only(args, table):
        return
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    results = []
    for path in args.run:
        results.append(run(path, overrides, args.seed))
        append_jsonl(args.jsonl, results[-1])
    print(f"\nmachine: {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
