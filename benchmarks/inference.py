"""Benchmark: inference latency of the ML-1M Transformer (frozen architecture of sasrec.py).

Timing does not depend on the weights' values, so the model is trained for one epoch only.
Measures top-10 for all 6,040 users (full ranking, seen excluded, whole history as input)
and the latency of one user's forward pass + top-10.

    .venv/bin/python benchmarks/inference.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import frozen, machine  # noqa: E402
from sasrec import CONFIGS  # noqa: E402

from lmrec.data import load_dataset  # noqa: E402
from lmrec.models import create_model  # noqa: E402

if __name__ == "__main__":
    ds = load_dataset("ml-1m")
    model_name = "sasrec"
    config = CONFIGS[("ml-1m", model_name)]
    torch.manual_seed(0)
    model_cfg, training = frozen(model_name, config | {"epochs": 1})
    model = create_model(model_name, model_cfg, training=training, runtime={"progress": False}).fit(ds.interactions)
    histories = ds.interactions.sequences()
    model.recommend(histories.take(np.arange(256)), 10)  # warm-up
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        items, _ = model.recommend(histories, 10, batch_size=512)
        runs.append(time.perf_counter() - t0)
    single = []
    one = histories.take(np.array([0]))
    for u in range(200):
        one = histories.take(np.array([u]))
        t0 = time.perf_counter()
        model.recommend(one, 10)
        single.append(time.perf_counter() - t0)
    single_ms = np.array(single) * 1000
    print(f"machine: {machine()}")
    print(f"top-10 for all {len(histories):,} users: best {min(runs):.2f}s, runs {[round(r, 2) for r in runs]}")
    print(f"one user (forward + top-10): p50 {np.percentile(single_ms, 50):.2f} ms, "
          f"p99 {np.percentile(single_ms, 99):.2f} ms over {len(single)} users")
