"""The augmentation a sequence model's fit applies: the ``DataAugmentation`` the pipeline attaches
to the model from the run config's ``augmentation`` section.

Everything here reads the ``train`` a fit is given and nothing else, so the evaluated model's
augmentation sees training events only (tests/augment/test_leakage.py); virtual users are
training rows only, never evaluated or served.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmrec.augment.config import AugmentationConfig
from lmrec.augment.contrastive import ContrastiveHook
from lmrec.augment.prior import augment_with_priors
from lmrec.data.sequences import Interactions, Sequences
from lmrec.training.hooks import DataAugmentation, PreparedData, TrainingHook


class _PhaseHook(TrainingHook):
    """Lets the epoch's sequences depend on how far training is (ASReP's fine-tuning phase)."""

    name = "phase"

    def __init__(self) -> None:
        self.trainer = None

    def wrap(self, trainer) -> None:
        self.trainer = trainer

    def progress(self) -> float:
        return self.trainer.progress() if self.trainer is not None else 0.0


class Augmenter(DataAugmentation):
    def __init__(self, config: AugmentationConfig, methods: list[str], seed: int = 0) -> None:
        self.config, self.methods, self.seed = config, list(methods), seed
        # Virtual users are generated once, from the evaluated fit's training events, and reused by
        # the refit (its data holds those events too): the generator is the costly part.
        self.virtual: Sequences | None = None
        self.gan_summary: dict[str, Any] = {}

    def __bool__(self) -> bool:
        return bool(self.methods)

    def budget_share(self) -> float:
        share = self.config.prior.budget_share if "prior" in self.methods else 0.0
        if "gan" in self.methods and self.virtual is None:
            share += self.config.gan.budget_share
        return share

    def prepare(self, model, train: Interactions, budget_s: float | None) -> PreparedData:
        cfg, hooks = self.config, []
        summary: dict[str, Any] = {"methods": self.methods}
        real = train.sequences()
        augmented = real
        if "contrastive" in self.methods:  # first: a bad view option fails before the costly methods run
            neighbour = model.content_neighbours(train.item_counts() > 0) if model.uses_item_content else None
            hooks.append(ContrastiveHook(cfg.contrastive, self.seed, neighbour))
            summary["contrastive"] = cfg.contrastive.model_dump()
        if "prior" in self.methods:
            c = model.config
            arch = {"max_len": c.max_len, "d_model": c.d_model, "dropout": c.dropout}
            share = None if budget_s is None else budget_s * cfg.prior.budget_share
            augmented, summary["prior"] = augment_with_priors(train, arch, model.training, cfg.prior, share)
        if "gan" in self.methods:
            if self.virtual is None:
                from lmrec.augment.gan import virtual_users

                share = None if budget_s is None else budget_s * cfg.gan.budget_share
                self.virtual, self.gan_summary = virtual_users(real, train.n_items, train.item_counts() > 0, cfg.gan,
                                                               budget_s=share, seed=self.seed)
            summary["gan"] = self.gan_summary | {"virtual_users": len(self.virtual), "weight": cfg.gan.weight}
        phase = _PhaseHook() if "prior" in self.methods and cfg.prior.pretrain_share < 1 else None
        if phase is not None:
            hooks.append(phase)
        virtual, weight, pretrain = self.virtual, cfg.gan.weight, cfg.prior.pretrain_share

        def sequences(epoch: int, rng: np.random.Generator) -> Sequences:
            seqs = real if phase is not None and phase.progress() >= pretrain else augmented
            if virtual is None or not len(virtual):
                return seqs
            n = int(rng.binomial(len(virtual), weight))
            return Sequences.concat(seqs, virtual.take(np.sort(rng.choice(len(virtual), n, replace=False))))

        return PreparedData(sequences, hooks, summary)
