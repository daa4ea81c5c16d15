"""The Augmenter's epoch sequences: pseudo-prior phase switch and virtual users mixed in by weight."""

import numpy as np

from lmrec.augment import plan as plan_module
from lmrec.augment.config import AugmentationConfig
from lmrec.augment.plan import Augmenter
from lmrec.data.sequences import Sequences
from tests.conftest import interactions_from


class FakeModel:
    uses_item_content = False

    class config:  # noqa: N801 - stands in for a resolved model config
        max_len, d_model, dropout = 10, 16, 0.1

    training = None


def test_prior_phase_then_real_sequences_only(monkeypatch):
    train = interactions_from([[1, 2], [3, 4, 5]], n_items=8)
    augmented = Sequences.from_lists([[7, 1, 2], [3, 4, 5]])
    monkeypatch.setattr(plan_module, "augment_with_priors", lambda *a, **k: (augmented, {"users_augmented": 1}))
    aug = AugmentationConfig(methods=["prior"], prior={"pretrain_share": 0.5})
    prepared = Augmenter(aug, ["prior"]).prepare(FakeModel(), train, budget_s=10)
    phase = next(h for h in prepared.hooks if h.name == "phase")
    rng = np.random.default_rng(0)

    class Trainer:
        share = 0.2

        def progress(self):
            return self.share

    trainer = Trainer()
    phase.wrap(trainer)
    assert prepared.sequences(0, rng)[0].tolist() == [7, 1, 2]
    trainer.share = 0.5
    assert prepared.sequences(1, rng)[0].tolist() == [1, 2]
    assert prepared.summary["prior"] == {"users_augmented": 1}


def test_virtual_users_are_mixed_in_by_weight():
    train = interactions_from([[1, 2], [3, 4, 5]], n_items=8)
    aug = Augmenter(AugmentationConfig(methods=["gan"], gan={"weight": 0.25}), ["gan"])
    aug.virtual = Sequences.from_lists([[6, 7]] * 400)
    prepared = aug.prepare(FakeModel(), train, budget_s=10)
    sizes = [len(prepared.sequences(e, np.random.default_rng(e))) - 2 for e in range(20)]
    assert 80 < np.mean(sizes) < 120  # about a quarter of the 400 each epoch
    assert prepared.sequences(0, np.random.default_rng(0))[0].tolist() == [1, 2]  # real rows first, unchanged
    assert prepared.summary["gan"]["virtual_users"] == 400
    assert aug.budget_share() == 0.0  # already generated: the refit reuses them
