"""Contrastive views as a training hook: an InfoNCE term between two random views of every
training sequence in the batch, added to the next-item loss (CL4SRec; CoSeRec's substitution for
models with item content)."""

from __future__ import annotations

import torch

from lmrec.augment import views
from lmrec.augment.config import ContrastiveConfig
from lmrec.errors import ConfigError
from lmrec.training.hooks import StepOutput, TrainingHook
from lmrec.training.losses import info_nce


class ContrastiveHook(TrainingHook):
    name = "contrastive"

    def __init__(self, config: ContrastiveConfig, seed: int, neighbour: torch.Tensor | None = None) -> None:
        if "substitute" in config.views and neighbour is None:
            raise ConfigError("augmentation.contrastive.views: 'substitute' needs item content (use sasrec-text with "
                             "an items file)")
        self.config, self.neighbour = config, neighbour
        self.generator = torch.Generator().manual_seed(seed)

    def view(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, L) -> one random view (B, L); the kind is drawn once per call."""
        c = self.config
        kind = c.views[int(torch.randint(len(c.views), (1,), generator=self.generator))]
        if kind == "substitute":
            return views.substitute(tokens, c.substitute, self.neighbour, self.generator)
        return getattr(views, kind)(tokens, getattr(c, kind), self.generator)

    def extra_loss(self, batch, output: StepOutput) -> torch.Tensor | None:
        if not self.config.weight:
            return None
        inputs, net, table = output.context["inputs"], output.context["net"], output.context["table"]
        inputs = inputs[(inputs != 0).sum(dim=1) >= 2]  # (B', L) users with something to crop or reorder
        if len(inputs) < 2:  # InfoNCE needs another user as a negative
            return None
        a = net(self.view(inputs), table)[:, -1]  # (B', D) state after each view's latest event
        b = net(self.view(inputs), table)[:, -1]
        return self.config.weight * info_nce(a, b, self.config.temperature, self.config.similarity == "cosine")
