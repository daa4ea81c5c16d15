"""Benchmark: the cost of the content path in one training step of sasrec-text on Beauty.

Times the first 40 batches of epoch 0 of the frozen fused config of benchmarks/text.py (with its
id_shrinkage, so items with few events take the borrowing path; bf16 autocast as in training
when the CPU has it natively), twice, for: the whole fused step, the
fused item table alone (adapter over the catalogue + borrowed IDs, forward and backward), and
the same network with the ID view only. Weights do not change the timing, so nothing is trained.

    .venv/bin/python benchmarks/fused_step.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import frozen, machine  # noqa: E402
from text import runs  # noqa: E402

from lmrec.data import load_dataset  # noqa: E402
from lmrec.data.splits import TRAIN, LeaveOneOutConfig, make_split  # noqa: E402
from lmrec.models import create_model  # noqa: E402
from lmrec.training.device import bf16_supported  # noqa: E402


def main() -> None:
    ds = load_dataset("beauty")
    train = ds.interactions.subset(make_split(ds.interactions, LeaveOneOutConfig()) == TRAIN)
    _, name, config = next(r for r in runs("beauty") if "fused" in r[0])
    torch.manual_seed(0)
    model_cfg, training = frozen(name, config)
    model = create_model(name, model_cfg, training=training, runtime={"progress": False})
    model.attach_items(ds.item_info)
    model.setup(train)  # what fit() does before its first step
    batches = model._batches(0)[:40]
    shrunk = int(((model.warm > 0) & (model.warm < 1)).sum())
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    model.net.train()
    bf16 = bf16_supported("cpu")

    def ms_per_step(loss_fn) -> float:
        t0 = time.perf_counter()
        for window in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = loss_fn(window)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / len(batches) * 1000

    cases = {"fused step": lambda w: model._loss(w).loss,
             "fused item table only": lambda w: model.net.item_table().float().pow(2).mean(),
             "ID-only step (same network, fusion id)": lambda w: model._loss(w).loss}
    print(f"machine: {machine()}, bf16 autocast {bf16}, {len(batches)} steps of batch {model.training.batch_size}, "
          f"max length {model.config.max_len}, d_model {model.config.d_model}, {train.n_items:,} items, "
          f"id_shrinkage {model.config.id_shrinkage} ({shrunk:,} items with a share of their own ID in (0, 1))\n")
    print("| what | ms per step, pass 1 | pass 2 |\n|---|---|---|")
    for label, fn in cases.items():
        model.net.fusion = "id" if label.startswith("ID-only") else "fused"
        print(f"| {label} | {ms_per_step(fn):.1f} | {ms_per_step(fn):.1f} |", flush=True)


if __name__ == "__main__":
    main()
