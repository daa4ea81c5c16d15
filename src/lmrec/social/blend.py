"""Recommendations from a user's neighbourhood, blended with the model's own.

social(u, i) = sum over u's friends v of (1 + sim * |h_u & h_v|) * x_v[i]  (+ ``fof`` x the same over
friends of friends who are not friends), where x_v[i] = c_vi^(1/4) / sqrt(sum_j c_vj^(1/4)) and c_vi is
what friend v's events on item i carry (their play counts or ratings summed; 1 per event where the
data has none): what u's circle has, each friend's vote shrunk by how much they have, tilted
towards what they play most, and grown by how much of it u shares (a friend who plays the same
artists speaks for u's taste more than one who only knows u). The blend is z(model) + alpha *
z(social), each score z-scored over the catalogue per user, with alpha, fof and sim picked on
validation for each history-length bucket (a user with no events has nothing but the circle; one
with fifty needs it less). Users without relations get the model alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import EvalSet, eval_set
from lmrec.evaluation.metrics import ndcg

# (name, fewest events, most events, events the validation histories are cut to when picking alpha)
BUCKETS = (("0", 0, 0, 0), ("1-3", 1, 3, 2), ("4-10", 4, 10, 7), (">10", 11, 10**9, None))
# 0.125: on Last.fm validation the weighted votes peak at 0.125-0.25 with 3 events (twenty-first session).
ALPHAS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 16.0)
FOF_WEIGHTS = (0.0, 0.25)
# On Last.fm validation (seventeenth session) sim 0.5-1 raised the blend by 1-3% at 1, 3 and 5
# events and 2 and more lowered it at 3.
SIMS = (0.0, 1.0)
# Votes grow with the fourth root of a friend's play count / rating: on Last.fm validation (3 runs, 3
# events) it beat 0/1 votes by 3-5% at each run's best alpha, log(1 + plays) and sqrt(plays) by 1-3%.
VOTE_POWER = 0.25
CHUNK = 512
Combo = tuple[float, float, float]  # (alpha, fof, sim)
VALID_USERS = 2000
# Seconds per user x item x ranking of the weight search and the test buckets: 108 s for 1,883
# validation and 1,883 test users over Last.fm's 17,632 items (twenty-ninth session, 1 thread;
# numpy's ranking and scipy's votes use one thread, so 2 threads took as long).
SEARCH_PACE_S = 2.3e-8


def bucket_of(n_events: int) -> str:
    return next(name for name, lo, hi, _ in BUCKETS if lo <= n_events <= hi)


@dataclass
class SocialWeights:
    """What validation chose per bucket: the blend weight alpha, the friends-of-friends weight and
    the shared-history weight (runs written before it was added have none: 0)."""

    alpha: dict[str, float] = field(default_factory=lambda: {b[0]: 0.0 for b in BUCKETS})
    fof: dict[str, float] = field(default_factory=lambda: {b[0]: 0.0 for b in BUCKETS})
    validation: dict[str, dict] = field(default_factory=dict)  # bucket -> {"alpha,fof,sim": NDCG@10}
    sim: dict[str, float] = field(default_factory=lambda: {b[0]: 0.0 for b in BUCKETS})

    def combo(self, bucket: str) -> Combo:
        return self.alpha[bucket], self.fof[bucket], self.sim[bucket]

    def to_dict(self) -> dict:
        return asdict(self)


def history_matrix(data: Interactions) -> sp.csr_matrix:
    """(n_users, n_items) vote matrix x: c^VOTE_POWER per (user, item), c the events' values summed
    (1 per event without one), each row divided by the square root of its sum (0/1 histories over
    sqrt(length) when nothing carries a value)."""
    values = np.ones(len(data), np.float32) if data.value is None else event_values(data.value)
    # duplicate (user, item) events are summed
    return vote_rows(sp.csr_matrix((values, (data.user, data.item)), shape=(data.n_users, data.n_items)))


def event_values(values) -> np.ndarray:
    """What each event adds to its item's vote: its value, 1 where it has none (NaN), nothing below 0."""
    return np.maximum(np.nan_to_num(np.asarray(values, dtype=np.float32), nan=1.0), 0.0)


def vote_rows(c: sp.csr_matrix) -> sp.csr_matrix:
    """Summed values (rows: users) -> ``history_matrix``'s votes."""
    x = c.tocsr().astype(np.float32)
    x.data = x.data ** VOTE_POWER
    x.eliminate_zeros()
    norms = np.sqrt(np.asarray(x.sum(axis=1)).ravel())
    return sp.diags(1.0 / np.where(norms > 0, norms, 1.0)).dot(x).tocsr()


def social_scores(adj: sp.csr_matrix, x: sp.csr_matrix, users: np.ndarray, fof: float,
                  own: Sequences | None = None, sim: float = 0.0) -> np.ndarray:
    """(B, n_items) neighbourhood scores of ``users`` (rows of ``adj``); ``own``: their histories
    (B rows) when ``sim`` weighs each neighbour by the events they share."""
    direct = adj[users]  # (B, n_users)
    shared = None
    if sim and own is not None:
        # (B, n_users) events each user shares with everyone; x > 0 is the 0/1 history matrix
        shared = own.to_matrix(x.shape[1]) @ (x > 0).astype(np.float32).T
    weigh = (lambda rel: rel + sim * rel.multiply(shared).tocsr()) if shared is not None else (lambda rel: rel)
    scores = weigh(direct) @ x  # (B, n_items)
    if fof:
        two = (direct @ adj).tolil()  # (B, n_users) paths of length 2
        for r, u in enumerate(users):
            two[r, u] = 0  # not oneself
        two = two.tocsr()
        two = two - two.multiply(direct)  # nor the direct friends again
        two.eliminate_zeros()
        two.data[:] = 1.0
        scores = scores + fof * (weigh(two) @ x)
    return np.asarray(scores.todense() if sp.issparse(scores) else scores, dtype=np.float32)


def zscore(s: np.ndarray) -> np.ndarray:
    std = s.std(axis=1, keepdims=True)
    return (s - s.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def blend(model: np.ndarray, social: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """(B, n) z(model) + alpha * z(social); rows without any social signal keep the model's order."""
    return blend_z(zscore(model), zscore(social), (social != 0).any(axis=1), alpha)


def blend_z(z_model: np.ndarray, z_social: np.ndarray, has: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """``blend`` of scores already z-scored (the weight search z-scores each once, not per weight)."""
    return z_model + np.where(has, alpha, 0.0)[:, None] * z_social


def _ndcg_at_10(scores: np.ndarray, seen: Sequences, targets: Sequences) -> np.ndarray:
    s = scores.copy()
    if seen.values.size:
        s[seen.row_ids(), seen.values] = -np.inf
    top = np.argpartition(-s, 10, axis=1)[:, :10]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1, kind="stable"), 1)
    hits = np.stack([np.isin(top[r], targets[r]) for r in range(len(top))]) if len(top) else np.zeros((0, 10), bool)
    return ndcg(hits, targets.lengths(), 10)


@dataclass
class Variants:
    """Per-user NDCG@10 of each way to recommend, for one stage and one history cut."""

    users: np.ndarray
    model: np.ndarray
    social: np.ndarray
    popularity: np.ndarray
    blends: dict[Combo, np.ndarray]  # per-user NDCG@10


@dataclass
class StageData:
    """What every history cut of one evaluation stage shares, made once: the stage's eval set, and
    the events before it (friends' histories and item counts)."""

    es: EvalSet
    x: sp.csr_matrix  # (n_users, n_items) histories before the stage
    counts: np.ndarray  # (n_items,) events before the stage

    @classmethod
    def of(cls, data: Interactions, labels: np.ndarray, stage: int) -> StageData:
        before = data.subset(labels < stage)
        return cls(eval_set(data, labels, stage), history_matrix(before),
                   np.bincount(before.item, minlength=data.n_items).astype(np.float32))


def score_variants(model, stage: StageData, adj: sp.csr_matrix, keep_last: int | None,
                   combos: list[Combo], users: np.ndarray | None = None) -> Variants:
    """Users with relations and a target at the stage, their history cut to its last ``keep_last``
    events (None: whole; the target unchanged; the kept events are what is excluded as seen):
    NDCG@10 of the model, the neighbourhood alone (fof 0, sim 0), popularity, and each
    (alpha, fof, sim) blend.
    Friends' histories are their events before the stage, as the user's own are."""
    es, x, counts = stage.es, stage.x, stage.counts
    degree = np.asarray(adj.sum(axis=1)).ravel()
    keep = degree[es.users] > 0
    if users is not None:
        keep &= np.isin(es.users, users)
    rows = np.flatnonzero(keep)
    histories = es.histories.take(rows)
    if keep_last is not None:
        histories = histories.suffixes(keep_last)
    targets = es.targets.take(rows)
    out = {"model": [], "social": [], "popularity": []} | {c: [] for c in combos}
    neighbourhoods = sorted({(f, w) for _, f, w in combos} | {(0.0, 0.0)})
    for start in range(0, len(rows), CHUNK):
        part = slice(start, start + CHUNK)
        h, t = histories.take(part), targets.take(part)
        users_part = es.users[rows[part]]
        with torch.inference_mode():
            m = model.score(h).float().numpy()  # (C, n_items)
        social = {(f, w): social_scores(adj, x, users_part, f, h, w) for f, w in neighbourhoods}
        out["model"].append(_ndcg_at_10(m, h, t))
        out["social"].append(_ndcg_at_10(social[0.0, 0.0] + 1e-6 * zscore(counts[None, :]), h, t))  # ties: popularity
        out["popularity"].append(_ndcg_at_10(np.broadcast_to(counts, m.shape), h, t))
        z_model = zscore(m)
        z_social = {k: (zscore(v), (v != 0).any(axis=1)) for k, v in social.items()}
        for alpha, f, w in combos:
            out[alpha, f, w].append(_ndcg_at_10(blend_z(z_model, *z_social[f, w], alpha), h, t))
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    return Variants(es.users[rows], cat.pop("model"), cat.pop("social"), cat.pop("popularity"), cat)


def choose_weights(model, data: Interactions, labels: np.ndarray, adj: sp.csr_matrix, valid_stage: int,
                   seed: int = 0) -> SocialWeights:
    """alpha, fof and sim per bucket by validation NDCG@10 of up to 2,000 validation users with
    relations, their histories cut to the bucket's typical length."""
    stage = StageData.of(data, labels, valid_stage)
    es_users = stage.es.users
    with_friends = es_users[np.asarray(adj.sum(axis=1)).ravel()[es_users] > 0]
    rng = np.random.default_rng(seed)
    sample = rng.choice(with_friends, min(VALID_USERS, len(with_friends)), replace=False) if len(with_friends) else \
        with_friends
    weights = SocialWeights()
    for name, _, _, cut in BUCKETS:
        combos = grid(cut != 0)
        v = score_variants(model, stage, adj, cut, combos, users=sample)
        if not len(v.users):
            continue
        means = {c: float(v.blends[c].mean()) for c in combos}
        weights.alpha[name], weights.fof[name], weights.sim[name] = best_combo(means)
        weights.validation[name] = {",".join(f"{w:g}" for w in c): round(s, 5) for c, s in means.items()}
    return weights


def evaluation_seconds(valid_users: int, test_users: int, n_items: int) -> float:
    """What ``choose_weights`` over ``valid_users`` validation users with relations and the test
    buckets over ``test_users`` take (a budget estimate): every ranking of the catalogue they make."""
    valid = sum(len(grid(cut != 0)) + 3 for *_, cut in BUCKETS)  # each combination, model, social, popularity
    test = len(BUCKETS) * 4  # the chosen blend, model, social, popularity
    return SEARCH_PACE_S * n_items * (min(VALID_USERS, valid_users) * valid + test_users * test)


def grid(own_events: bool = True) -> list[Combo]:
    """The weights searched; without events of their own (``own_events`` False) nobody shares any,
    so sim is not searched."""
    return [(a, f, w) for a in ALPHAS for f in FOF_WEIGHTS for w in (SIMS if own_events else (0.0,))]


def best_combo(means: dict[Combo, float]) -> Combo:
    """The best-scoring combination; ties: the smaller weights (alpha first)."""
    return max(means, key=lambda c: (means[c], *(-w for w in c)))


def neighbourhood_scores(friends: list[tuple[list[int], list[float]]],
                         friends_of_friends: list[tuple[list[int], list[float]]], n_items: int, fof: float,
                         own: list[int] = (), sim: float = 0.0) -> np.ndarray:
    """(n_items,) ``social_scores`` of one user (history ``own``) from their friends' (and friends
    of friends') histories as (item indices, event values) lists: what the service computes per
    request, each group's votes built as one matrix."""
    s = np.zeros(n_items, dtype=np.float32)
    mine = np.zeros(n_items, dtype=np.float32)
    mine[np.asarray(own, dtype=np.int64)] = 1.0
    for weight, group in ((1.0, friends), (fof, friends_of_friends)):
        if not weight or not group:
            continue
        rows = np.repeat(np.arange(len(group)), [len(items) for items, _ in group])
        items = np.concatenate([np.asarray(items, dtype=np.int64) for items, _ in group])
        values = np.concatenate([event_values(values) for _, values in group])
        x = vote_rows(sp.csr_matrix((values, (rows, items)), shape=(len(group), n_items)))  # (F, n_items)
        shared = (x > 0).astype(np.float32) @ mine  # (F,) items each shares with the user
        s += weight * (x.T @ (1 + sim * shared)).astype(np.float32)
    return s


def top_k(scores: np.ndarray, seen: list[list[int]], k: int, exclude_seen: bool = True
          ) -> tuple[np.ndarray, np.ndarray]:
    """(B, n) scores -> top-k indices and scores (B, k), seen items excluded; -1 / -inf where empty."""
    s = scores.astype(np.float32, copy=True)
    if exclude_seen:
        for r, h in enumerate(seen):
            if len(h):
                s[r, np.asarray(h, dtype=np.int64)] = -np.inf
    kk = min(k, s.shape[1])
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
    idx = np.take_along_axis(part, order, 1)
    val = np.take_along_axis(s, idx, 1)
    top = np.full((len(s), k), -1, dtype=np.int64)
    out = np.full((len(s), k), -np.inf, dtype=np.float32)
    top[:, :kk] = np.where(np.isneginf(val), -1, idx)
    out[:, :kk] = val
    return top, out
