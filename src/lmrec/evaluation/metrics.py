"""Ranking metrics as pure functions over a hit matrix.

``hits`` is a (U, K) boolean array: ``hits[u, r]`` is True when the item at rank ``r`` (0-based)
of user ``u``'s list is relevant. ``n_relevant`` (U,) is the number of relevant items of each
user (1 under leave-one-out). Each function returns one value per user for the top ``k``;
averaging is left to the caller so the same numbers can be broken down by bucket.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _top(hits: np.ndarray, k: int) -> np.ndarray:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return hits[:, :k]


def hit_rate(hits: np.ndarray, k: int) -> np.ndarray:
    """1 if any relevant item is in the top k, else 0."""
    return _top(hits, k).any(axis=1).astype(np.float64)


def recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Share of the relevant items found in the top k."""
    return _top(hits, k).sum(axis=1) / np.maximum(n_relevant, 1)


def precision(hits: np.ndarray, k: int) -> np.ndarray:
    """Share of the top k that is relevant (always divided by k, even if the list is shorter)."""
    return _top(hits, k).sum(axis=1) / k


def ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Binary-relevance NDCG: sum of 1/log2(rank + 2) over hits, over the best achievable sum."""
    top = _top(hits, k)
    discounts = 1.0 / np.log2(np.arange(top.shape[1]) + 2.0)  # (K,)
    dcg = top @ discounts
    ideal_cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])  # (k + 1,)
    idcg = ideal_cum[np.minimum(n_relevant, k)]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def mrr(hits: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first relevant item in the top k, 0 if none."""
    top = _top(hits, k)
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1.0), 0.0)


def coverage(top_items: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top k (-1 fills short lists: not an item)."""
    top = top_items[:, :k]
    return np.unique(top[top >= 0]).size / n_items


def novelty(top_items: np.ndarray, item_probability: np.ndarray, k: int) -> float:
    """Mean self-information -log2 p(i) of the recommended items (higher = less popular items);
    the -1 filler of short lists is not an item and does not count.

    ``item_probability[i]`` is the share of training users who interacted with item i; callers
    smooth it so that items without training events get a finite value.
    """
    top = top_items[:, :k]
    top = top[top >= 0]
    return float(-np.log2(item_probability[top]).mean()) if top.size else 0.0


def item_probability(train_user_counts: np.ndarray, n_users: int) -> np.ndarray:
    """Add-one smoothed share of users per item, so cold items have a finite self-information."""
    return (train_user_counts + 1.0) / (n_users + 1.0)


PER_USER = {
    "hr": lambda hits, n_rel, k: hit_rate(hits, k),
    "recall": recall,
    "ndcg": ndcg,
    "mrr": lambda hits, n_rel, k: mrr(hits, k),
    "precision": lambda hits, n_rel, k: precision(hits, k),
}


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative (ties count half), by the Mann-Whitney rank sum. labels (N,) in {0, 1}."""
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        raise ValueError("auc needs both positive and negative labels")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(probabilities: np.ndarray, labels: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of predicted P(label = 1), clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1 - eps)
    y = np.asarray(labels).astype(bool)
    return float(-np.mean(np.where(y, np.log(p), np.log1p(-p))))


def accuracy(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Share of predictions on the right side of ``threshold`` (P >= threshold predicts 1)."""
    return float(np.mean((np.asarray(probabilities) >= threshold) == np.asarray(labels).astype(bool)))
