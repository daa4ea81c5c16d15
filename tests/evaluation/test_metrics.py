"""Metrics against hand-computed values, and against ranx as an independent implementation."""

import math
import warnings

import numpy as np
import pytest

from lmrec.evaluation import metrics as M

# Three users, top-4 lists. u0: hit at rank 2 (of 1 relevant); u1: hits at ranks 1 and 3 (of 3
# relevant); u2: no hit (of 2 relevant).
HITS = np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
NREL = np.array([1, 3, 2])


def test_hit_rate_recall_precision_by_hand():
    assert M.hit_rate(HITS, 4).tolist() == [1, 1, 0]
    assert M.hit_rate(HITS, 1).tolist() == [0, 1, 0]
    assert M.recall(HITS, NREL, 4).tolist() == pytest.approx([1.0, 2 / 3, 0.0])
    assert M.precision(HITS, 4).tolist() == pytest.approx([0.25, 0.5, 0.0])


def test_ndcg_by_hand():
    u0 = (1 / math.log2(3)) / 1.0
    u1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert M.ndcg(HITS, NREL, 4).tolist() == pytest.approx([u0, u1, 0.0])
    # At k=2 the ideal list of u1 holds only 2 relevant items.
    assert M.ndcg(HITS, NREL, 2)[1] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_mrr_by_hand():
    assert M.mrr(HITS, 4).tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert M.mrr(HITS, 1).tolist() == pytest.approx([0.0, 1.0, 0.0])


def test_coverage_and_novelty_by_hand():
    top = np.array([[0, 1], [0, 2]])
    assert M.coverage(top, n_items=8, k=2) == pytest.approx(3 / 8)
    assert M.coverage(top, n_items=8, k=1) == pytest.approx(1 / 8)
    p = np.array([0.5, 0.25, 0.125])
    assert M.novelty(top, p, 2) == pytest.approx((1 + 2 + 1 + 3) / 4)
    assert M.item_probability(np.array([0, 3]), n_users=3).tolist() == [0.25, 1.0]


def test_the_filler_of_short_lists_is_no_item():
    """A list shorter than k ends in -1 (no item); it must not count as item -1 (or item 0)."""
    top = np.array([[0, -1], [2, -1]])
    assert M.coverage(top, n_items=8, k=2) == pytest.approx(2 / 8)
    p = np.array([0.5, 0.25, 0.125])
    assert M.novelty(top, p, 2) == pytest.approx((1 + 3) / 2)
    assert M.novelty(np.full((2, 2), -1), p, 2) == 0.0


def test_k_must_be_positive():
    with pytest.raises(ValueError):
        M.hit_rate(HITS, 0)


def test_agrees_with_ranx_on_random_rankings():
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(0)
    n_users, n_items, k = 40, 30, 10
    qrels, run, hits, nrel = {}, {}, [], []
    for u in range(n_users):
        relevant = set(rng.choice(n_items, size=rng.integers(1, 5), replace=False).tolist())
        ranking = rng.permutation(n_items)[:k]
        qrels[f"q{u}"] = {f"d{i}": 1 for i in relevant}
        run[f"q{u}"] = {f"d{i}": float(k - r) for r, i in enumerate(ranking)}
        hits.append([i in relevant for i in ranking])
        nrel.append(len(relevant))
    hits, nrel = np.array(hits), np.array(nrel)
    ours = {
        f"ndcg@{k}": M.ndcg(hits, nrel, k).mean(),
        f"hit_rate@{k}": M.hit_rate(hits, k).mean(),
        f"mrr@{k}": M.mrr(hits, k).mean(),
        f"precision@{k}": M.precision(hits, k).mean(),
        f"recall@{k}": M.recall(hits, nrel, k).mean(),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's own type-safety chatter inside ranx
        theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), list(ours))
    for name, value in ours.items():
        assert value == pytest.approx(theirs[name], abs=1e-9), name


def test_log_loss_by_hand():
    p, y = np.array([0.9, 0.2, 0.6]), np.array([1, 0, 0])
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3
    assert M.log_loss(p, y) == pytest.approx(expected)
    assert math.isfinite(M.log_loss(np.array([0.0, 1.0]), np.array([1, 0])))  # clipped, not inf


def test_accuracy_by_hand():
    assert M.accuracy(np.array([0.9, 0.2, 0.6, 0.5]), np.array([1, 0, 0, 1])) == pytest.approx(0.75)


def test_interest_metrics_agree_with_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.random(500) * 0.7, 0.01, 0.99)
    p[:50] = 0.5  # ties count half in both
    assert M.auc(p, y) == pytest.approx(sk.roc_auc_score(y, p))
    assert M.log_loss(p, y) == pytest.approx(sk.log_loss(y, p))
    assert M.accuracy(p, y) == pytest.approx(sk.accuracy_score(y, p >= 0.5))
