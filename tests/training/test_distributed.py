"""Data-parallel training with two real processes (torchrun, gloo): the same weights as one
process with the same effective batch, and a failing rank ends the job instead of hanging it."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.training.ddp_worker import train

ROOT = Path(__file__).parents[2]


def torchrun(out: Path, **env) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           str(ROOT / "tests" / "training" / "ddp_worker.py"), str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env=os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"} | env)


def test_two_ranks_train_the_weights_of_one_process(tmp_path):
    done = torchrun(tmp_path / "ddp.safetensors")
    assert done.returncode == 0, done.stderr[-3000:]
    parallel = load_file(tmp_path / "ddp.safetensors")
    single = train(parallel=False).state_dict()
    assert parallel.keys() == single.keys()
    d = 16  # d_model: the key bias (qkv.bias[d:2d]) has a zero gradient (softmax ignores a shift of every
    # key), so Adam turns float noise of order 1e-9 into steps of the learning rate: excluded.
    for name, value in single.items():
        got = parallel[name]
        if name.endswith("qkv.bias"):
            got, value = torch.cat([got[:d], got[2 * d :]]), torch.cat([value[:d], value[2 * d :]])
        torch.testing.assert_close(got, value, atol=1e-6, rtol=1e-5, msg=name)


def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    done = torchrun(tmp_path / "never.safetensors", FAIL_RANK="1")
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr
    assert not (tmp_path / "never.safetensors").exists()


def test_train_with_nproc_writes_one_run(tmp_path):
    from tests.conftest import make_events

    make_events().write_csv(tmp_path / "events.csv")
    (tmp_path / "c.toml").write_text('[model]\nd_model = 16\nmax_len = 10\n[training]\nepochs = 3\n'
                                     '[runtime]\nprogress = false\n')
    cmd = [sys.executable, "-m", "lmrec.cli.main", "train", "--data", str(tmp_path / "events.csv"), "--model",
           "sasrec", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"), "--nproc", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "distributed: 2 processes (gloo)" in output
    assert (tmp_path / "run" / "run.json").exists() and (tmp_path / "run" / "model").exists()
    assert output.count("done run ->") == 1  # rank 0 alone evaluates and writes
