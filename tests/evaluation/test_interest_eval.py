"""The AUC difference and its paired bootstrap, and the interest metrics summary."""

import numpy as np
import pytest

from lmrec.data.sequences import Sequences
from lmrec.data.splits import InterestSet
from lmrec.evaluation.interest import auc_difference, interest_metrics


def _set(n_users=60, per_user=4, seed=0):
    rng = np.random.default_rng(seed)
    cands = Sequences.from_lists([rng.integers(0, 10, per_user) for _ in range(n_users)])
    empty = Sequences.from_lists([[] for _ in range(n_users)])
    return InterestSet(np.arange(n_users), empty, empty, cands, rng.integers(0, 2, cands.values.size))


def test_identical_predictors_differ_by_nothing():
    s = _set()
    p = np.random.default_rng(1).random(s.targets.size)
    assert auc_difference(p, p, s) == (0.0, 0.0)


def test_a_better_predictor_wins_by_its_auc_gap_with_a_bootstrap_error():
    s = _set()
    noise = np.random.default_rng(2).random(s.targets.size)
    good, bad = s.targets + 0.8 * noise, noise
    diff, se = auc_difference(good, bad, s, resamples=200)
    from lmrec.evaluation.metrics import auc

    assert diff == pytest.approx(auc(good, s.targets) - auc(bad, s.targets))
    assert diff > 0.3 and 0 < se < diff / 3


def test_interest_metrics_with_one_class_has_no_auc():
    m = interest_metrics(np.array([0.2, 0.9]), np.array([1, 1]))
    assert m["auc"] is None and m["accuracy"] == 0.5 and m["n"] == 2 and m["like_rate"] == 1.0
