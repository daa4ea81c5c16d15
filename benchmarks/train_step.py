"""Benchmark: where one SASRec training step on ML-1M spends its time (forward, loss, backward).

Times the first 30 batches of epoch 0 (batch 64, max length 200, d=64, bf16 autocast), twice,
with the full-softmax CE made chunk by chunk (the default) and in one piece, then prints the
torch profiler's top operators over 10 steps.

    .venv/bin/python benchmarks/train_step.py
"""

from __future__ import annotations

import time

import torch
from torch.profiler import ProfilerActivity, profile

from lmrec.data import load_dataset
from lmrec.data.splits import TRAIN, LeaveOneOutConfig, make_split
from lmrec.models import create_model
from lmrec.training import losses

LOSSES = {"chunked CE": losses.chunked_softmax_ce, "one-piece CE": lambda h, w, t: losses.full_softmax_ce(h @ w.T, t)}


def main() -> None:
    ds = load_dataset("ml-1m")
    train = ds.interactions.subset(make_split(ds.interactions, LeaveOneOutConfig()) == TRAIN)
    torch.manual_seed(0)
    model = create_model("sasrec", {"max_len": 200, "d_model": 64, "dropout": 0.2, "n_heads": 2, "block": "pre_ln"},
                         training={"batch_size": 64})
    model.setup(train)  # what fit() does before its first step
    batches = model._batches(0)[:30]
    opt = torch.optim.AdamW(model.net.parameters(), lr=1e-3)
    model.net.train()

    def step(window, loss_fn, clock=None):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            inputs, targets = window[:, :-1], window[:, 1:]
            table = model.net.item_table()
            hidden = model.net(inputs, table)  # (B, L, D)
            valid = (targets != 0) & (inputs != 0)
            t1 = time.perf_counter()
            loss = loss_fn(hidden[valid], model.net.item_weights(table), targets[valid] - 1)
            t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if clock is not None:
            for key, dt in zip(("forward", "loss", "backward"), (t1 - t0, t2 - t1, time.perf_counter() - t2), strict=True):
                clock[key] = clock.get(key, 0.0) + dt

    print(f"| loss | forward s | loss s | backward + step s | total s ({len(batches)} steps) |\n|---|---|---|---|---|")
    for name, fn in LOSSES.items():
        for _ in range(2):
            clock: dict[str, float] = {}
            for w in batches:
                step(w, fn, clock)
            print(f"| {name} | {clock['forward']:.2f} | {clock['loss']:.2f} | {clock['backward']:.2f} "
                  f"| {sum(clock.values()):.2f} |")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for w in batches[:10]:
            step(w, losses.chunked_softmax_ce)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
