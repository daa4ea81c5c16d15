"""Benchmark: the cost of the content path in one training step of sasrec-text on Beauty.

Times the first 40 batches of epoch 0 of the frozen fused config of benchmarks/text.py (bf16
autocast as in training when the CPU has it natively), twice, for: the whole fused step, the
fused item table alone (adapter over the catalogue + borrowed IDs, forward and backward), and
the same network with the ID view only. Weights do not change the timing, so nothing is trained.

    .venv/bin/python benchmarks/fused_step.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from text import runs  # noqa: E402

from lmrec.data import load_dataset  # noqa: E402
from lmrec.data.splits import TRAIN, LeaveOneOutConfig, make_split  # noqa: E402
from lmrec.models import create_model  # noqa: E402
from lmrec.models.sequential import native_bf16  # noqa: E402


def main() -> None:
    ds = load_dataset("beauty")
    train = ds.interactions.subset(make_split(ds.interactions, LeaveOneOutConfig()) == TRAIN)
    _, name, config = next(r for r in runs("beauty") if "fused" in r[0])
    torch.manual_seed(0)
    model = create_model(name, config | {"progress": False})
    model.attach_items(ds.item_info)
    # What fit() sets up before training, without training.
    model.warm = (train.item_counts() > 0).astype(np.float32)
    model._softmax_items = torch.from_numpy(np.flatnonzero(model.warm))
    model.n_items, model.net = train.n_items, model.build_net(train.n_items)
    batches = list(model._batches(train.sequences(), 0))[:40]
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    model.net.train()
    bf16 = native_bf16()

    def ms_per_step(loss_fn) -> float:
        t0 = time.perf_counter()
        for window in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(window)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / len(batches) * 1000

    cases = {"fused step": model._loss,
             "fused item table only": lambda w: model.net.item_table().float().pow(2).mean(),
             "ID-only step (same network, fusion id)": model._loss}
    print(f"machine: {machine()}, bf16 autocast {bf16}, {len(batches)} steps of batch {model.config.batch_size}, "
          f"max length {model.config.max_len}, d_model {model.config.d_model}, {train.n_items:,} items\n")
    print("| what | ms per step, pass 1 | pass 2 |\n|---|---|---|")
    for label, fn in cases.items():
        model.net.fusion = "id" if label.startswith("ID-only") else "fused"
        print(f"| {label} | {ms_per_step(fn):.1f} | {ms_per_step(fn):.1f} |", flush=True)


if __name__ == "__main__":
    main()
