"""Benchmark: Popularity, ItemKNN and EASE on ML-1M and Beauty.

Protocol: leave-one-out, full ranking over the whole catalogue, seen items excluded.
Frozen config (validated 2026-11-28): library defaults, i.e. itemknn neighbors=100 shrink=10,
EASE l2=500 on ML-1M; on Beauty (far sparser) EASE uses l2=50.

    .venv/bin/python benchmarks/baselines.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, markdown_rows, run_one  # noqa: E402

CONFIGS = [
    ("ml-1m", "pop", {}),
    ("ml-1m", "itemknn", {"neighbors": 100, "shrink": 10.0}),
    ("ml-1m", "ease", {"l2": 500.0}),
    ("beauty", "pop", {}),
    ("beauty", "itemknn", {"neighbors": 100, "shrink": 10.0}),
    ("beauty", "ease", {"l2": 50.0}),
]

if __name__ == "__main__":
    results = []
    for dataset, model, config in CONFIGS:
        r = run_one(dataset, model, config)
        print(f"{dataset:8s} {model:8s} HR@10 {r['summary']['overall']['hr@10']:.4f} "
              f"NDCG@10 {r['summary']['overall']['ndcg@10']:.4f} fit {r['fit_s']:.1f}s", flush=True)
        results.append(r)
    print(f"\nmachine: {machine()}\n")
    print(markdown_rows(results))
