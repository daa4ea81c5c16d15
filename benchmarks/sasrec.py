"""Benchmark: the SASRec-family Transformer (and the DNN baseline) on ML-1M, Beauty and ML-100K.

Protocol: leave-one-out, full ranking, seen items excluded; early stopping on validation
NDCG@10; the test numbers come from the best validation epoch. Training wall time includes
the validation checks. Frozen configs below (validated 2026-11-28).

    .venv/bin/python benchmarks/sasrec.py ml-1m       # one dataset
    .venv/bin/python benchmarks/sasrec.py             # all of them
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, markdown_rows, run_one  # noqa: E402

CONFIGS = {
    "ml-1m": ("sasrec", {"max_len": 200, "d_model": 64, "n_layers": 2, "n_heads": 2, "dropout": 0.2,
                         "lr": 2e-3, "batch_size": 128, "bf16": True, "eval_every": 2, "patience": 5,
                         "epochs": 400, "max_train_minutes": 28}),
    "beauty": ("sasrec", {"max_len": 50, "d_model": 64, "n_layers": 2, "n_heads": 2, "dropout": 0.5,
                          "lr": 1e-3, "batch_size": 128, "bf16": True, "eval_every": 2, "patience": 5,
                          "epochs": 400, "max_train_minutes": 28}),
    "ml-100k": ("sasrec", {"max_len": 200, "d_model": 64, "n_layers": 2, "n_heads": 2, "dropout": 0.2,
                           "lr": 2e-3, "batch_size": 128, "bf16": True, "eval_every": 2, "patience": 5,
                           "epochs": 400}),
}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CONFIGS)
    results = []
    for name in names:
        model, config = CONFIGS[name]
        r = run_one(name, model, config | {"progress": False})
        st = r["fitted"].train_state
        epoch_s = [h["seconds"] for h in st.history]
        print(f"{name}: {model} best epoch {st.best_epoch} of {st.epoch}, valid NDCG@10 {st.best_score:.4f}, "
              f"train {st.train_seconds:.0f}s (incl. validation), median epoch {sorted(epoch_s)[len(epoch_s) // 2]:.1f}s",
              flush=True)
        for h in st.history:
            print("   ", {k: round(v, 4) for k, v in h.items()}, flush=True)
        results.append(r)
    print(f"\nmachine: {machine()}\n")
    print(markdown_rows(results))
