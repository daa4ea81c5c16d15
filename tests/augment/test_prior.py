"""Pseudo-prior items: the reversed model writes valid items before short histories only."""

import numpy as np

from lmrec.augment.config import PriorConfig
from lmrec.augment.prior import augment_with_priors, reversed_holdout, reversed_interactions
from lmrec.data.sequences import Sequences
from lmrec.data.splits import VALID
from lmrec.training.config import TrainingConfig
from tests.conftest import interactions_from

FAST = TrainingConfig(epochs=3, batch_size=16, lr=1e-2)
ARCH = {"max_len": 10, "d_model": 16, "dropout": 0.1, "n_heads": 1}


def test_reversed_interactions_and_holdout_by_hand():
    seqs = Sequences.from_lists([[1, 2, 3], [4], [5, 6]])
    rev = reversed_interactions(seqs, n_items=7)
    assert rev.item.tolist() == [3, 2, 1, 4, 6, 5]
    assert rev.user.tolist() == [0, 0, 0, 1, 2, 2]
    labels = reversed_holdout(rev)
    assert (labels == VALID).nonzero()[0].tolist() == [2]  # only the 3-event user; its earliest real event


def test_priors_are_valid_unseen_items_before_short_histories_only():
    rng = np.random.default_rng(0)
    # cycle walks of length 3..12 over 20 items: user u sees u, u+1, ...
    seqs = [[(u + j) % 20 for j in range(3 + u % 10)] for u in range(60)]
    train = interactions_from(seqs, n_items=21)  # item 20 has no training events
    out, summary = augment_with_priors(train, ARCH, FAST, PriorConfig(k=2, max_history=6), budget_s=60)
    assert len(out) == len(seqs)
    for u, original in enumerate(seqs):
        row = out[u].tolist()
        if len(original) < 6:
            assert len(row) == len(original) + 2 and row[2:] == original
            prior = row[:2]
            assert all(0 <= i < 20 for i in prior)  # real catalogue items with training events
            assert not set(prior) & set(original) and prior[0] != prior[1]
        else:
            assert row == original
    assert summary["users_augmented"] == sum(len(s) < 6 for s in seqs)
    assert summary["items_written"] == 2 * summary["users_augmented"]
    del rng


def test_reversed_model_learns_the_cycle_backwards():
    seqs = [[(u + j) % 20 for j in range(8)] for u in range(80)]
    short = [[(5 + j) % 20 for j in range(3)]]  # 5, 6, 7: before 5 comes 4, before 4 comes 3
    train = interactions_from(seqs + short, n_items=20)
    cfg = FAST.model_copy(update={"epochs": 30})
    out, _ = augment_with_priors(train, ARCH, cfg, PriorConfig(k=2, max_history=4), budget_s=120)
    assert out[len(seqs)].tolist() == [3, 4, 5, 6, 7]
