"""Sparsity regularisers of the sequence models, as training hooks."""

from __future__ import annotations

import torch

from lmrec.training.hooks import StepOutput, TrainingHook


class StateL1(TrainingHook):
    """L1 penalty on the user states (the network's output after each real event): pushes every
    state towards few active dimensions, the sparsity prior of sparse-coding models, in the hope
    that users with a handful of events are described by few, well-estimated directions."""

    name = "state_l1"
    accelerated = True

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def extra_loss(self, batch, output: StepOutput) -> torch.Tensor | None:
        hidden, inputs = output.context["hidden"], output.context["inputs"]  # (B, L, D), (B, L)
        states = hidden[inputs != 0]  # (N, D) states after real events
        return self.weight * states.abs().mean() if states.numel() else None
