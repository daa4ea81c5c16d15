"""Interest prediction (P(like), rating >= 4) with no config: `lmrec train --model interest` next to
the baselines it reports (majority class, user mean, item mean, biased MF; each tuned on validation),
on the run's split, over seeds. Test numbers are what each run reports once at its end.

    python benchmarks/interest.py                       # ml-100k and ml-latest-small, seeds 0-2
    python benchmarks/interest.py --data ml-100k --seeds 0 --split temporal
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import append_jsonl, machine

from lmrec.config import RunConfig
from lmrec.pipeline import train_run

PREDICTORS = ("model", "majority", "user-mean", "item-mean", "biased-mf")


def run(dataset: str, seed: int, split: str) -> dict:
    config = RunConfig.model_validate({"split": {"kind": split}, "training": {"seed": seed},
                                       "runtime": {"progress": False}})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train_run(dataset, "interest", Path(tmp) / "run", config, log=lambda *_: None)
        meta = json.loads((result.run_dir / "run.json").read_text())
    interest = result.summary["interest"]
    return {"dataset": dataset, "seed": seed, "split": split, "seconds": time.perf_counter() - t0,
            "interest": interest, "ndcg@10": result.summary["overall"]["ndcg@10"],
            "auto_choices": meta["auto_choices"]}


def _ms(values: list[float]) -> str:
    return f"{np.mean(values):.4f}" + (f" +- {np.std(values, ddof=1):.4f}" if len(values) > 1 else "")


def table(results: list[dict]) -> str:
    lines = ["| dataset | split | predictor | accuracy | AUC | log-loss | seeds |", "|---|---|---|---|---|---|---|"]
    for (dataset, split) in dict.fromkeys((r["dataset"], r["split"]) for r in results):
        rs = [r for r in results if r["dataset"] == dataset and r["split"] == split]
        for name in PREDICTORS:
            ms = [r["interest"]["model"] if name == "model" else r["interest"]["baselines"][name] for r in rs]
            lines.append(f"| {dataset} | {split} | {'interest (no config)' if name == 'model' else name} | "
                         f"{_ms([m['accuracy'] for m in ms])} | {_ms([m['auc'] for m in ms])} | "
                         f"{_ms([m['log_loss'] for m in ms])} | {len(ms)} |")
        vs = [r["interest"]["versus_best_baseline"] for r in rs]
        best = sorted({v["baseline"] for v in vs})
        lines.append(f"| {dataset} | {split} | AUC - best baseline ({', '.join(best)}) | | "
                     f"{_ms([v['auc_difference'] for v in vs])} (bootstrap SE per seed "
                     f"{np.mean([v['standard_error'] for v in vs]):.4f}) | | {len(vs)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["ml-100k", "ml-latest-small"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--split", choices=["leave-one-out", "temporal"], default="leave-one-out")
    ap.add_argument("--jsonl", type=Path, help="append each run's result here")
    args = ap.parse_args()
    results = []
    for dataset in args.data:
        for seed in args.seeds:
            r = run(dataset, seed, args.split)
            results.append(r)
            m = r["interest"]["model"]
            print(f"{dataset} seed {seed}: AUC {m['auc']:.4f} accuracy {m['accuracy']:.4f} "
                  f"({r['seconds']:.0f} s)", flush=True)
            append_jsonl(args.jsonl, r)
    print(f"\nmachine: {machine()}\n")
    print(table(results))


if __name__ == "__main__":
    main()
