"""One rank of the DDP parity test (run by torchrun from test_distributed.py): trains a tiny
SASRec on the cycle fixture and rank 0 saves the weights. FAIL_RANK makes that rank fail."""

import os
import sys

import torch
from safetensors.torch import save_file

from lmrec.models import create_model
from lmrec.pipeline import seed_everything
from lmrec.training import distributed
from lmrec.training.config import TrainingConfig
from tests.conftest import interactions_from

CONFIG = {"max_len": 6, "d_model": 16, "dropout": 0.0, "n_heads": 1, "block": "sasrec"}
TRAINING = {"epochs": 3, "batch_size": 16, "lr": 1e-2, "warmup_steps": 0, "bf16": False, "patience": None,
            "lr_schedule": "cosine", "weight_decay": 0.0, "eval_every": 1, "valid_users": None, "time_budget": 5}


def train(parallel: bool) -> torch.nn.Module:
    seqs = [[(u + j) % 12 for j in range(4 + u % 5)] for u in range(40)]
    seed_everything(0)
    model = create_model("sasrec", CONFIG, training=TrainingConfig(**TRAINING))
    if parallel:
        model.hooks = [distributed.DistributedDataParallel()]
    model.runtime = model.runtime.model_copy(update={"progress": False})
    model.fit(interactions_from(seqs, 12), time_budget_s=300)
    return model.net


if __name__ == "__main__":
    parallel = distributed.init()
    if os.environ.get("FAIL_RANK") == os.environ.get("RANK"):
        raise RuntimeError(f"rank {os.environ['RANK']} fails on purpose")
    net = train(parallel)
    if distributed.is_main():
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, sys.argv[1])
