"""A first slate for someone with no history: popular, but spread over the catalogue's main
clusters, so that the first clicks tell the model the most.

Candidates are the most popular items; they are clustered (k-means on unit item vectors: the
model's own when it has them, else a truncated SVD of the interaction matrix), clusters are taken
in order of their total popularity, and each gives its most popular item in turn (round robin)
until the slate is full.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

MAX_CLUSTERS = 50
MAX_SLATE = 100
# Candidates: the top k * CANDIDATES_PER_SLOT items by popularity (at least MIN_CANDIDATES), in k
# clusters. Chosen on held-out validation users of ML-1M and Beauty (benchmarks/onboarding.py
# --tune, grid 20-200 candidates x 2-20 clusters for a slate of 20): 100 candidates in 20 clusters
# was best on both; the popularity list and the earlier 200 were worse.
CANDIDATES_PER_SLOT = 5
MIN_CANDIDATES = 100
SVD_DIM = 32


def item_space(model, train: sp.csr_matrix) -> np.ndarray:
    """(n_items, d) vectors to cluster items by: the model's item vectors, else an SVD of ``train``."""
    try:
        vectors = model._item_vectors()
    except NotImplementedError:
        vectors = None
    if vectors is not None:
        return vectors.float().numpy()
    from scipy.sparse.linalg import svds

    m = train.astype(np.float32)
    dim = max(1, min(SVD_DIM, min(m.shape) - 1))
    _, s, vt = svds(m, k=dim, random_state=0)
    return (vt.T * s).astype(np.float32)  # (n_items, dim)


def kmeans(x: np.ndarray, k: int, iterations: int = 25, seed: int = 0) -> np.ndarray:
    """Cluster label per row of ``x`` (k-means++ start, cosine on unit rows)."""
    rng = np.random.default_rng(seed)
    x = torch.nn.functional.normalize(torch.from_numpy(x).float(), dim=1)  # (N, d)
    centres = [x[int(rng.integers(len(x)))]]
    for _ in range(1, k):  # k-means++: far points are likelier starts
        d = 1 - torch.stack([x @ c for c in centres]).max(0).values  # (N,)
        p = (d.clamp(min=0) ** 2).numpy().astype(np.float64)
        centres.append(x[int(rng.choice(len(x), p=p / p.sum()))] if p.sum() > 0 else x[int(rng.integers(len(x)))])
    c = torch.stack(centres)  # (k, d)
    for _ in range(iterations):
        labels = (x @ c.T).argmax(1)  # (N,)
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = torch.nn.functional.normalize(members.mean(0), dim=0)
    return (x @ c.T).argmax(1).numpy()


def diverse_slate(vectors: np.ndarray, counts: np.ndarray, k: int, *, depth: int | None = None,
                  clusters: int | None = None, seed: int = 0) -> np.ndarray:
    """k item indices: popular items spread over the clusters of the popular part of the catalogue.

    ``depth``: how many of the most popular items are candidates (default: 5 per slot, at least
    100); ``clusters``: how many groups they are split into (default k, at most MAX_CLUSTERS).
    depth = k with one cluster is the popularity list."""
    n_candidates = min(len(counts), depth or max(MIN_CANDIDATES, CANDIDATES_PER_SLOT * k))
    candidates = np.argsort(-counts, kind="stable")[:n_candidates]
    # Past MAX_CLUSTERS the slate keeps cycling through the clusters rather than splitting them
    # finer: k-means with hundreds of centres took over 10 s on ML-1M (found by fuzzing k=999).
    labels = kmeans(vectors[candidates], min(clusters or k, MAX_CLUSTERS, len(candidates)), seed=seed)
    weight = np.bincount(labels, weights=counts[candidates].astype(float))
    queues = [list(candidates[labels == j]) for j in np.argsort(-weight, kind="stable")]  # each most popular first
    slate: list[int] = []
    while len(slate) < min(k, len(candidates)):
        for q in queues:
            if q and len(slate) < k:
                slate.append(int(q.pop(0)))
    return np.array(slate, dtype=np.int64)
