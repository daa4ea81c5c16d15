"""Benchmark: data-parallel training, 1 process vs N processes (torchrun, gloo) on one machine.

The same `lmrec train` (ML-1M SASRec, automatic settings, a fixed number of epochs without
early stopping so both do the same work, no refit) once in one process with every core, once
with `--nproc N` and one torch thread per process. Reports seconds per epoch and test NDCG@10
(the same model up to float noise: the effective batch and schedule are one process's).

    .venv/bin/python benchmarks/distributed.py --data ml-1m --epochs 3 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def train(data: str, out: Path, epochs: int, nproc: int) -> dict:
    config = out.with_suffix(".toml")
    # patience larger than the epochs: no early stopping, both runs do the same work
    config.write_text(f"[training]\nepochs = {epochs}\npatience = {epochs + 1}\nrefit = false\neval_every = {epochs}\n"
                      "[interests]\natoms = 0\n[runtime]\nprogress = false\n")
    env = os.environ | ({"OMP_NUM_THREADS": "1"} if nproc > 1 else {})
    cmd = [sys.executable, "-m", "lmrec.cli.main", "train", "--data", data, "--model", "sasrec", "--config",
           str(config), "--out", str(out), "--nproc", str(nproc)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    meta = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {"nproc": nproc, "epochs": epochs, "fit_s": meta["timings"]["fit_s"],
            "s_per_epoch": meta["timings"]["fit_s"] / epochs, "ndcg@10": metrics["overall"]["ndcg@10"]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="ml-1m")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--nproc", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [train(args.data, Path(tmp) / f"p{n}", args.epochs, n) for n in (1, args.nproc)]
    print("| processes | epochs | fit s | s / epoch | test NDCG@10 |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['nproc']} | {r['epochs']} | {r['fit_s']:.0f} | {r['s_per_epoch']:.1f} | {r['ndcg@10']:.4f} |")
