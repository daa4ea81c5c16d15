"""A first slate for someone with no history: popular, but spread over the catalogue's main
clusters, so that the first clicks tell the model the most.

Candidates are the most popular items; they are clustered (k-means on unit item vectors: the
model's own when it has them, else a truncated SVD of the interaction matrix), clusters are taken
in order of their total popularity, and each gives its most popular item in turn (round robin)
until the slate is full.

A second kind of slate is built for the clicks directly (``greedy_slate``): training users are
treated as new users and the slate is filled one slot at a time with the candidate that most
improves the model's recommendations after their clicks.

Which slate a run serves is chosen per run (``choose_setting``, called by ``lmrec train``): other
users, validation users, are treated as new users shown each candidate slate, who click the slate
items in their history (up to 3), and the slate whose recommendations after those clicks are best
wins; the popularity list is a candidate too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import torch

from lmrec.data.sequences import Sequences
from lmrec.evaluation import metrics as M

MAX_CLUSTERS = 50
MAX_SLATE = 100
# Candidates: the top k * CANDIDATES_PER_SLOT items by popularity (at least MIN_CANDIDATES), in k
# clusters. Chosen on held-out validation users of ML-1M and Beauty (benchmarks/onboarding.py
# --tune, grid 20-200 candidates x 2-20 clusters for a slate of 20): 100 candidates in 20 clusters
# was best on both; the popularity list and the earlier 200 were worse.
CANDIDATES_PER_SLOT = 5
MIN_CANDIDATES = 100
SVD_DIM = 32
# The per-run choice: slates of REFERENCE_SLATE items, simulated new users click up to CLICKS of
# them, NDCG@10 of the model's recommendations after those clicks decides.
REFERENCE_SLATE, CLICKS, K = 20, 3, 10
GRID = ((20, 1),) + tuple((depth, clusters) for depth in (20, 50, 100, 200) for clusters in (2, 5, 10, 20))
CHOICE_USERS = 1000
# Greedy slates: candidates from the top GREEDY_DEPTHS by popularity, built on up to GREEDY_USERS
# training users (never the users the choice is made on), MAX_SLATE slots stored with the run.
GREEDY_DEPTHS, GREEDY_USERS = (100, 200), 5000


@dataclass(frozen=True)
class SlateSetting:
    """Candidates (``depth``) and ``clusters`` for a slate of ``REFERENCE_SLATE`` items; other slate
    sizes scale both. depth = the slate with one cluster is the popularity list. A greedy slate
    (``greedy_slate``) has no clusters (0) and its items in ``order``; a slate of k is its first k."""

    depth: int
    clusters: int
    order: tuple[int, ...] | None = None

    def at(self, k: int) -> tuple[int, int]:
        """(depth, clusters) for a slate of k items."""
        scale = k / REFERENCE_SLATE
        return max(k, round(self.depth * scale)), max(1, min(k, round(self.clusters * scale)))

    def name(self) -> str:
        if self.order is not None:
            return f"greedy/{self.depth}"
        return "popularity" if self.clusters == 1 and self.depth <= REFERENCE_SLATE else f"{self.depth}/{self.clusters}"

    def describe(self, k: int = REFERENCE_SLATE) -> str:
        """In words, for a slate of k items."""
        if self.order is not None:
            return f"built slot by slot for new users' clicks from the {self.depth} most popular items"
        if self.name() == "popularity":
            return "the popularity list"
        depth, clusters = self.at(k)
        return f"{depth} candidates in {clusters} clusters"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SlateSetting:
        """From ``as_dict`` (run.json); runs from before greedy slates have no order."""
        order = d.get("order")
        return cls(d["depth"], d["clusters"], None if order is None else tuple(order))


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
    if min(m.shape) < 3:  # too small to truncate: the items' columns themselves
        return np.ascontiguousarray(m.T.toarray())  # (n_items, n_users)
    dim = min(SVD_DIM, min(m.shape) - 1)
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
    100, the fallback when a run has no chosen setting); ``clusters``: how many groups they are
    split into (default k, at most MAX_CLUSTERS). depth = k with one cluster is the popularity list."""
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


def first_slate(vectors: np.ndarray, counts: np.ndarray, k: int, setting: SlateSetting | None) -> np.ndarray:
    """The slate a run serves: its chosen setting scaled to k, else the default."""
    if setting is not None and setting.order is not None:  # past the stored order: by popularity
        order = [i for i in setting.order if i < len(counts)][:k]
        taken = set(order)
        rest = [int(i) for i in np.argsort(-counts, kind="stable")[: k + len(order)] if i not in taken]
        return np.array(order + rest[: k - len(order)], dtype=np.int64)
    depth, clusters = setting.at(k) if setting is not None else (None, None)
    return diverse_slate(vectors, counts, k, depth=depth, clusters=clusters)


def simulate(model, slate: np.ndarray, histories: list[np.ndarray]) -> dict:
    """New users shown ``slate``: each clicks the slate items in their history, in slate order, up to
    CLICKS. After 0 clicks they get the slate's first K, after c clicks the model's top-K from
    those clicks (a user with fewer matching items keeps the list of their last click).
    ``ndcg``: (CLICKS + 1) arrays of per-user NDCG@K against the rest of each history."""
    k = min(K, len(slate))  # a catalogue smaller than K: lists of all it has
    seen = [set(h.tolist()) for h in histories]
    clicks = [[int(i) for i in slate if i in h][:CLICKS] for h in seen]
    per_click = []
    recs = np.tile(slate[:k], (len(histories), 1))  # (U, k); no click at all: still the slate
    for c in range(CLICKS + 1):
        rows = [r for r, cl in enumerate(clicks) if c and len(cl) >= c]  # the others keep their last list
        if rows:
            recs[rows], _ = model.recommend(Sequences.from_lists([clicks[r][:c] for r in rows]), k)
        relevant = [h.difference(cl[:c]) for h, cl in zip(seen, clicks, strict=True)]
        hits = np.array([[i in rel for i in row] for row, rel in zip(recs, relevant, strict=True)])  # (U, k)
        per_click.append(M.PER_USER["ndcg"](hits.reshape(len(recs), k), np.array([len(r) for r in relevant]), k))
    return {"ndcg": per_click,
            "users_with_clicks": [float(np.mean([len(cl) >= n for cl in clicks])) for n in range(1, CLICKS + 1)]}


def greedy_slate(model, histories: list[np.ndarray], counts: np.ndarray, depth: int,
                 length: int = REFERENCE_SLATE) -> np.ndarray:
    """``length`` items from the ``depth`` most popular, one slot at a time: each slot takes the
    candidate that most raises the NDCG@K that ``histories`` (users treated as new, as in
    ``simulate``) get after their clicks, with the items already placed before it. A user who
    clicks nothing scores 0 whatever the slate (none of its items is theirs), so every slot weighs
    covering new users against telling the model more about those who already clicked."""
    n_items = len(counts)
    candidates = np.argsort(-counts, kind="stable")[: min(depth, n_items)]
    users = [np.unique(h) for h in histories]
    # (user row, item) pairs as sorted keys row * n_items + item: membership by binary search,
    # without a users x items matrix
    keys = np.concatenate([r * n_items + h.astype(np.int64) for r, h in enumerate(users)] or [np.zeros(0, np.int64)])

    def has(rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(n, m) whether user rows[i] has items[i, j] (-1: never)."""
        q = rows[:, None].astype(np.int64) * n_items + np.maximum(items, 0)
        at = np.minimum(np.searchsorted(keys, q), max(len(keys) - 1, 0))
        return (keys[at] == q) & (items >= 0) if len(keys) else np.zeros(q.shape, dtype=bool)

    member = has(np.arange(len(users)), np.tile(candidates, (len(users), 1)))  # (U, depth)
    sizes = np.array([len(h) for h in users])
    clicks: list[tuple[int, ...]] = [() for _ in users]
    current = np.zeros(len(users))  # each user's NDCG@K after their clicks so far
    lists: dict[tuple[int, ...], np.ndarray] = {}  # clicks -> the model's top K after them
    placed = np.zeros(len(candidates), dtype=bool)
    slate: list[int] = []
    while len(slate) < min(length, len(candidates)):
        open_users = np.array([len(c) < CLICKS for c in clicks], dtype=bool)
        # who would click candidate j next: users with a click left who have it
        clickers = [np.flatnonzero(open_users & member[:, j]) if not placed[j] else np.zeros(0, np.int64)
                    for j in range(len(candidates))]
        pending = {clicks[r] + (int(candidates[j]),) for j, rows in enumerate(clickers) for r in rows} - lists.keys()
        if pending:
            new_keys = sorted(pending)
            top, _ = model.recommend(Sequences.from_lists([list(k) for k in new_keys]), K)  # (P, K)
            lists.update(zip(new_keys, top, strict=True))
        if not any(len(rows) for rows in clickers):  # nobody left to click: the rest by popularity
            slate += [int(c) for c in candidates[~placed]][: length - len(slate)]
            break
        # A candidate nobody would click gains 0; one whose click makes a list worse (the user's
        # last relevant items already clicked) loses. Ties go to the more popular candidate.
        best, best_gain, best_after = -1, -np.inf, None
        for j, rows in enumerate(clickers):
            if placed[j]:
                continue
            gain, after = 0.0, None
            if len(rows):
                c = int(candidates[j])
                recs = np.stack([lists[clicks[r] + (c,)] for r in rows])  # (n, K)
                n_relevant = sizes[rows] - np.array([len(clicks[r]) + 1 for r in rows])  # the clicks are not judged
                after = M.PER_USER["ndcg"](has(rows, recs), n_relevant, K)  # (n,)
                gain = float((after - current[rows]).sum())
            if gain > best_gain:
                best, best_gain, best_after = j, gain, after
        placed[best] = True
        slate.append(int(candidates[best]))
        rows = clickers[best]
        if len(rows):
            current[rows] = best_after
        for r in rows:
            clicks[r] += (slate[-1],)
    return np.array(slate, dtype=np.int64)


def choose_setting(model, vectors: np.ndarray, counts: np.ndarray, histories: list[np.ndarray],
                   grid=GRID, builders: list[np.ndarray] | None = None) -> tuple[SlateSetting, dict[str, float]]:
    """The setting of ``grid`` (and with ``builders``, the greedy slates built on those users, who
    must not be the judging users) whose simulated new users (``histories``) get the best NDCG@10
    after CLICKS clicks, and every setting's score. Ties keep the earlier setting (popularity first)."""
    settings = [SlateSetting(depth, clusters) for depth, clusters in grid]
    if builders:
        settings += [SlateSetting(depth, 0, tuple(greedy_slate(model, builders, counts, depth, MAX_SLATE).tolist()))
                     for depth in GREEDY_DEPTHS]
    scores: dict[str, float] = {}
    best, best_score = None, -1.0
    for setting in settings:
        slate = first_slate(vectors, counts, REFERENCE_SLATE, setting)
        scores[setting.name()] = score = float(simulate(model, slate, histories)["ndcg"][-1].mean())
        if score > best_score:
            best, best_score = setting, score
    return best, scores
