"""Virtual users: valid histories, the requested length distribution, determinism, the quality report."""

import numpy as np
import pytest

from lmrec.augment.config import GanConfig
from lmrec.augment.gan import Generator, generate, max_jaccard, quality, virtual_users
from lmrec.data.sequences import Sequences
from lmrec.evaluation.metrics import auc


def cycles(n_users=80, n_items=30, seed=0):
    rng = np.random.default_rng(seed)
    return Sequences.from_lists([[(s + j) % n_items for j in range(int(rng.integers(3, 9)))]
                                 for s in rng.integers(0, n_items, n_users)])


def test_generator_writes_valid_histories_with_the_requested_lengths():
    allowed = np.ones(30, dtype=bool)
    allowed[[3, 7]] = False
    pool = np.array([2, 5, 5, 9])
    out = generate(Generator(30), 400, pool, allowed, seed=0)
    assert len(out) == 400
    assert set(out.lengths().tolist()) <= {2, 5, 9}
    assert abs((out.lengths() == 5).mean() - 0.5) < 0.1
    for r in range(len(out)):
        row = out[r]
        assert len(set(row.tolist())) == len(row)  # no item twice in a history
        assert row.min() >= 0 and row.max() < 30 and not np.isin(row, [3, 7]).any()


def test_generation_is_deterministic_under_a_seed():
    G = Generator(30)
    a = generate(G, 50, np.array([4]), np.ones(30, dtype=bool), seed=1)
    b = generate(G, 50, np.array([4]), np.ones(30, dtype=bool), seed=1)
    assert np.array_equal(a.values, b.values)


def test_max_jaccard_by_hand():
    real = Sequences.from_lists([[0, 1, 2], [3, 4]])
    virtual = Sequences.from_lists([[0, 1, 2], [0, 3], [5]])
    assert max_jaccard(virtual, real, 6).tolist() == pytest.approx([1.0, 1 / 3, 0.0])


def test_auc_by_hand():
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0])) == 1.0
    assert auc(np.array([0.1, 0.8, 0.9, 0.2]), np.array([1, 1, 0, 0])) == 0.25
    assert auc(np.array([0.5, 0.5]), np.array([1, 0])) == 0.5


def test_virtual_users_learn_the_data_and_report_quality():
    real = cycles(n_users=200)
    allowed = np.ones(30, dtype=bool)
    virtual, report = virtual_users(real, 30, allowed, GanConfig(users=100), budget_s=20, seed=0)
    assert 0 < len(virtual) <= 100
    # A generator that learnt this tiny catalogue's cycles writes copies of real users; they are dropped.
    assert report["virtual_users_over_0.8"] == 0
    assert max_jaccard(virtual, real, 30).max() <= 0.8
    # The cycle is learnt: most consecutive pairs of a virtual history follow it.
    pairs = [(row[j], row[j + 1]) for row in (virtual[i] for i in range(len(virtual))) for j in range(len(row) - 1)]
    assert np.mean([(b - a) % 30 == 1 for a, b in pairs]) > 0.4  # chance: 1/29
    assert {"fresh_discriminator_auc", "popularity_ks", "item_coverage", "max_jaccard_p50"} <= set(report)


def test_quality_tells_random_histories_from_real_ones():
    real, held = cycles(300, seed=1), cycles(300, seed=2)
    rng = np.random.default_rng(0)
    noise = Sequences.from_lists([rng.choice(30, 6, replace=False) for _ in range(300)])
    report = quality(noise, real, held, 30, seed=0)
    assert report["fresh_discriminator_auc"] > 0.9


def test_fresh_discriminator_needs_two_users_of_each_kind():
    from lmrec.augment.gan import fresh_discriminator_auc

    one = Sequences.from_lists([[1, 2]])
    assert np.isnan(fresh_discriminator_auc(one, cycles(10), 30, seed=0))
    # Small sets still score both kinds on the held-out half (no one-class AUC error).
    assert 0 <= fresh_discriminator_auc(cycles(3, seed=1), cycles(3, seed=2), 30, seed=0, steps=5) <= 1
