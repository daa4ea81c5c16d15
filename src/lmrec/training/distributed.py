"""Data-parallel training over several processes: PyTorch's DistributedDataParallel under
``torchrun`` (gloo on CPUs, NCCL on GPUs).

Every process builds the same epoch batches (same seed) and trains on its share of each batch
(rows ``rank::world``), so the effective batch, the number of steps and the learning-rate
schedule are those of one process. Each process scales its loss so that DDP's average of the
gradients is exactly the gradient of the whole batch's loss. Whatever decides the course of
training (the learning rate of a step, validation, the seconds spent against the time budget)
is rank 0's, broadcast to the others (``Trainer.agree``); only rank 0 validates and writes.

    torchrun --nproc-per-node 2 -m lmrec.cli.main train --data ml-1m --model sasrec --out runs/x
    lmrec train --nproc 2 ...    # the same: launches torchrun
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from lmrec.training.device import torch_device
from lmrec.training.hooks import StepOutput, TrainingHook

if TYPE_CHECKING:
    from lmrec.training.trainer import Trainer

TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a rank (rank 0 evaluates between fits)


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside torchrun."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init(device: str = "cpu") -> bool:
    """Join the process group when launched by torchrun (NCCL when the steps run on CUDA, else
    gloo); True when this is a distributed run."""
    rank, size = world()
    if size == 1:
        return False
    if not dist.is_initialized():
        if device == "cuda":  # NCCL: each process on its own GPU before the group forms
            torch_device(device)
        dist.init_process_group("nccl" if device == "cuda" else "gloo", timeout=TIMEOUT)
    return True


def backend() -> str:
    return dist.get_backend()


def is_main() -> bool:
    return world()[0] == 0


def broadcast(value: float) -> float:
    """Rank 0's ``value`` on every rank."""
    on = torch.device("cuda", torch.cuda.current_device()) if backend() == "nccl" else None  # NCCL: GPU tensors only
    t = torch.tensor([float(value)], dtype=torch.float64, device=on)
    dist.broadcast(t, src=0)
    return float(t.item())


def _positions(window: torch.Tensor) -> int:
    """Trained positions of (B, L + 1) left-padded windows: every event after a row's first."""
    return int(((window != 0).sum(dim=1) - 1).clamp(min=0).sum())


class _Loss(nn.Module):
    """The step's loss as a module, so that it runs through DDP's forward (which prepares the
    gradient reduction); ``net`` is registered so DDP sees its parameters."""

    def __init__(self, net: nn.Module, loss_fn) -> None:
        super().__init__()
        self.net, self.loss_fn = net, loss_fn

    def forward(self, batch: Any) -> StepOutput:
        out = self.loss_fn(batch)
        return out if isinstance(out, StepOutput) else StepOutput(out)


class DistributedDataParallel(TrainingHook):
    """Makes a trainer's steps data-parallel over the process group (one instance serves the fit
    and the refit)."""

    name = "ddp"
    accelerated = True

    def wrap(self, trainer: Trainer) -> None:
        rank, size = world()
        self.rank, self.size = rank, size
        self.norm = trainer.config.loss_norm
        gpu = [trainer.device.index] if trainer.device.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(_Loss(trainer.module, trainer.loss_fn), device_ids=gpu)
        trainer.loss_fn = self._step
        trainer.agree = broadcast
        if trainer.validate is not None:
            validate = trainer.validate
            trainer.validate = lambda: validate() if rank == 0 else float("nan")

    def _step(self, batch: Any) -> StepOutput:
        window = batch[0] if isinstance(batch, tuple) else batch  # (B, L + 1)
        rows = slice(self.rank, None, self.size)
        weight = 1.0
        if len(window) <= self.rank:  # fewer rows than ranks: a zero-weight copy keeps every rank in step
            rows, weight = slice(0, 1), 0.0
        mine = tuple(t[rows] for t in batch) if isinstance(batch, tuple) else batch[rows]
        local = mine[0] if isinstance(mine, tuple) else mine
        out = self.ddp(mine)
        # DDP averages over ranks. A per-batch mean loss is re-weighted by this rank's share of the
        # batch's positions, so the average is the whole batch's mean; an epoch-normalised loss is
        # already a sum over positions over a constant.
        share = _positions(local) / max(1, _positions(window)) if self.norm == "batch" else 1.0
        return StepOutput(out.loss * (weight * share * self.size), out.context)
