"""Extension points of the training loop.

Features that change how training runs (augmentation and auxiliary heads adding losses,
differential privacy clipping per-sample gradients, distributed data parallel wrapping the
module) plug in as hooks instead of editing every model:

    wrap(trainer)               once, when the trainer is built (before a checkpoint is loaded): may
                                replace trainer.module / trainer.optimizer or add parameter groups
    extra_loss(batch, output)   per step: a term added to the model's own loss (named by ``name``)
    after_backward(trainer)     per step, between backward and the optimizer step: gradient surgery
    on_epoch_end(trainer, rec)  per epoch, with the epoch's record (loss, lr, validation, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from lmrec.training.trainer import Trainer


@dataclass
class StepOutput:
    """What a model's loss function returns: its loss and what hooks may read to add theirs
    (e.g. ``inputs`` (B, L) tokens, ``hidden`` (B, L, D) states, ``table`` the item table)."""

    loss: torch.Tensor
    context: dict[str, Any] = field(default_factory=dict)


class TrainingHook:
    """Base class: every method is a no-op, so a hook overrides only what it needs."""

    name = "hook"
    needs_labels = False  # True: batches carry the events' like / dislike labels (context "labels")
    accelerated = False  # True: works with the network and batches on a GPU (lmrec.training.device)

    def wrap(self, trainer: Trainer) -> None:
        """Called once when the trainer is built, before a checkpoint is loaded."""

    def extra_loss(self, batch: Any, output: StepOutput) -> torch.Tensor | None:
        """A scalar added to the step's loss, or None."""
        return None

    def after_backward(self, trainer: Trainer) -> None:
        """Gradients are in ``trainer.module``'s parameters; the optimizer has not stepped yet."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        """``record`` is the epoch's entry of the training history; hooks may add fields to it."""


@dataclass
class PreparedData:
    """What a data augmentation hands the model's fit: the training sequences (or a function of
    (epoch, rng) giving each epoch's), the hooks it adds, and a summary for the run report."""

    sequences: Any  # Sequences | Callable[[int, np.random.Generator], Sequences]
    hooks: list[TrainingHook] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class DataAugmentation:
    """Changes what a sequence model trains on (implemented in :mod:`lmrec.augment`). ``prepare``
    runs inside ``fit`` after the config is resolved and may spend up to ``budget_share()`` of
    the fit's time budget (e.g. training a reversed model or a generator) before the first step."""

    def budget_share(self) -> float:
        return 0.0

    def prepare(self, model: Any, train: Any, budget_s: float | None) -> PreparedData:
        raise NotImplementedError
