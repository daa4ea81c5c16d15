"""Benchmark: the SASRec-family Transformer (and the DNN baseline) on ML-1M, Beauty and ML-100K.

Protocol: leave-one-out, full ranking, seen items excluded; early stopping on validation
NDCG@10; the test numbers come from the best validation epoch. Training wall time includes
the validation checks. Frozen configs below (validated 2026-11-28).

    .venv/bin/python benchmarks/sasrec.py ml-1m:sasrec   # one run
    .venv/bin/python benchmarks/sasrec.py ml-1m          # every model on one dataset
    .venv/bin/python benchmarks/sasrec.py                # all of them
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, markdown_rows, run_one  # noqa: E402

# loss_norm "batch" (the default until session 5) where a config has not been re-measured since.
_SHARED = {"d_model": 64, "batch_size": 128, "bf16": True, "eval_every": 2, "patience": 5, "epochs": 400,
           "max_train_minutes": 28, "loss_norm": "batch"}

CONFIGS = {
    ("ml-1m", "sasrec"): _SHARED | {"max_len": 200, "n_layers": 2, "n_heads": 1, "dropout": 0.1, "lr": 2e-3,
                                    "batch_size": 64, "eval_every": 3, "lr_schedule": "cosine", "warmup_steps": 200,
                                    "init_std": 0.02, "max_train_minutes": 16, "loss_norm": "epoch", "block": "sasrec"},
    ("beauty", "sasrec"): _SHARED | {"max_len": 50, "n_layers": 2, "n_heads": 2, "dropout": 0.5, "lr": 2e-3,
                                     "patience": 4, "max_train_minutes": 12, "lr_schedule": "cosine",
                                     "warmup_steps": 200, "init_std": 0.02, "weight_decay": 0.1,
                                     "loss_norm": "epoch"},
    ("ml-100k", "sasrec"): _SHARED | {"max_len": 200, "n_layers": 2, "n_heads": 2, "dropout": 0.2, "lr": 2e-3,
                                      "batch_size": 64},
    ("ml-1m", "dnn"): _SHARED | {"max_len": 50, "hidden": [256], "dropout": 0.2, "lr": 2e-3, "max_train_minutes": 6},
    ("beauty", "dnn"): _SHARED | {"max_len": 50, "hidden": [256], "dropout": 0.5, "lr": 1e-3, "max_train_minutes": 6},
}

if __name__ == "__main__":
    # Arguments select runs: "ml-1m" (every model on it), "ml-1m:dnn", or nothing for all.
    wanted = sys.argv[1:]
    keys = [k for k in CONFIGS if not wanted or k[0] in wanted or f"{k[0]}:{k[1]}" in wanted]
    results = []
    for name, model in keys:
        config = CONFIGS[(name, model)]
        r = run_one(name, model, config)
        st = r["fitted"].train_state
        epoch_s = [h["seconds"] for h in st.history]
        to_best = st.history[st.best_epoch - 1]["elapsed"]  # training + validation time up to the best epoch
        print(f"{name}: {model} best epoch {st.best_epoch} of {st.epoch}, valid NDCG@10 {st.best_score:.4f}, "
              f"train {st.train_seconds:.0f}s (incl. validation), median epoch {sorted(epoch_s)[len(epoch_s) // 2]:.1f}s, "
              f"time to best {to_best:.0f}s", flush=True)
        for h in st.history:
            print("   ", {k: round(v, 4) for k, v in h.items()}, flush=True)
        results.append(r)
    print(f"\nmachine: {machine()}\n")
    print(markdown_rows(results))
