"""Full-ranking evaluation with breakdowns by user history length and target item popularity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from rich.progress import Progress

from lmrec.data.sequences import Interactions
from lmrec.data.splits import HIDDEN, VALID, eval_set
from lmrec.evaluation import metrics as M
from lmrec.models.base import Recommender, ValidationSet


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ks: list[int] = Field(default_factory=lambda: [10, 20], description="cut-offs for every metric")
    exclude_seen: bool = Field(True, description="never count an item of the user's whole history")
    history_buckets: list[int] = Field(
        default_factory=lambda: [5, 20], description="upper bounds of the history-length buckets")
    head_fraction: float = Field(0.2, gt=0, lt=1, description="share of items called head, by their number of events "
                                 "before the evaluated stage")
    batch_size: int = Field(1024, ge=1)
    read_last: int | None = Field(
        None, ge=1, description="show the model only each user's last N events before the stage (what a sparse "
        "user looks like, on data whose users all have long histories); seen items are still the whole history")

    @field_validator("ks", "history_buckets")
    @classmethod
    def _positive_increasing(cls, v: list[int]) -> list[int]:
        if not v or any(x < 1 for x in v) or sorted(set(v)) != v:
            raise ValueError("must be a non-empty increasing list of positive integers")
        return v


def history_bucket_names(bounds: list[int]) -> list[str]:
    names, lo = [], 1
    for b in bounds:
        names.append(f"<={b}" if lo == 1 else f"{lo}-{b}")
        lo = b + 1
    return [*names, f">{bounds[-1]}"]


def popularity_buckets(counts: np.ndarray, head_fraction: float) -> np.ndarray:
    """Per item, from ``counts`` of events before the evaluated stage: 0 = head (the top
    ``head_fraction`` of the items with such events, by count), 1 = tail (the other items with
    events), 2 = cold (none)."""
    out = np.full(counts.size, 2, dtype=np.int8)
    warm = np.flatnonzero(counts > 0)
    order = warm[np.argsort(-counts[warm], kind="stable")]
    n_head = int(np.ceil(head_fraction * warm.size))
    out[order[:n_head]] = 0
    out[order[n_head:]] = 1
    return out


POPULARITY_NAMES = ["head", "tail", "cold"]


@dataclass
class EvalResult:
    """Per-user metric values plus the grouping needed for every breakdown."""

    users: np.ndarray  # (U,)
    history_length: np.ndarray  # (U,)
    per_user: dict[str, np.ndarray]  # "ndcg@10" -> (U,)
    per_user_by_popularity: dict[str, dict[str, np.ndarray]]  # "head" -> "ndcg@10" -> (U,), NaN if no target
    catalogue: dict[str, float]  # coverage@k, novelty@k
    config: EvalConfig

    def summary(self) -> dict:
        """Nested dict for metrics.json: overall, by history bucket, by popularity bucket."""
        bounds = self.config.history_buckets
        bucket_of = np.searchsorted(np.asarray(bounds), self.history_length, side="left")
        by_history = {}
        for b, name in enumerate(history_bucket_names(bounds)):
            sel = bucket_of == b
            by_history[name] = {"n_users": int(sel.sum())} | {
                k: float(v[sel].mean()) if sel.any() else None for k, v in self.per_user.items()}
        by_pop = {}
        for name, values in self.per_user_by_popularity.items():
            sel = ~np.isnan(next(iter(values.values())))
            by_pop[name] = {"n_users": int(sel.sum())} | {
                k: float(v[sel].mean()) if sel.any() else None for k, v in values.items()}
        return {
            "n_users": int(self.users.size),
            "overall": {k: float(v.mean()) if v.size else None for k, v in self.per_user.items()} | self.catalogue,
            "by_history": by_history,
            "by_popularity": by_pop,
        }


def evaluate(model: Recommender, data: Interactions, labels: np.ndarray, stage: int,
             config: EvalConfig | None = None, *, progress: bool = False,
             breakdown: bool = True) -> EvalResult:
    """Rank the whole catalogue for every user with a target at ``stage`` and score the top lists.

    The model reads each user's events before the stage; with ``exclude_seen`` none of those
    items can be recommended. Popularity buckets and novelty use the counts of events before
    the stage, which is everything the model could have known.
    """
    config = config or EvalConfig()
    es = eval_set(data, labels, stage)
    before = data.subset(labels < stage)
    counts = before.item_counts()
    pop_bucket = popularity_buckets(counts, config.head_fraction)
    user_counts = np.bincount(np.unique(before.user * data.n_items + before.item) % data.n_items,
                              minlength=data.n_items)
    item_prob = M.item_probability(user_counts, data.n_users)
    kmax = max(config.ks)
    n = len(es.users)
    tops = np.empty((n, kmax), dtype=np.int64)
    variants = {"all": None} | ({name: pop_bucket == i for i, name in enumerate(POPULARITY_NAMES)} if breakdown else {})
    hits = {v: np.zeros((n, kmax), dtype=bool) for v in variants}
    n_rel = {v: np.zeros(n, dtype=np.int64) for v in variants}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("evaluating", total=n)
        for start in range(0, n, config.batch_size):
            rows = slice(start, min(n, start + config.batch_size))
            full = es.histories.take(rows)
            shown = full if config.read_last is None else full.suffixes(config.read_last)
            top, _ = model.recommend(shown, kmax, exclude_seen=config.exclude_seen, batch_size=config.batch_size,
                                     seen=full)
            tops[rows] = top
            targets = es.targets.take(rows)
            # (B, n_items) relevance mask; its row r is True at user r's target items.
            rel = np.zeros((len(targets), data.n_items), dtype=bool)
            rel[targets.row_ids(), targets.values] = True
            safe_top = np.where(top < 0, 0, top)
            for v, item_mask in variants.items():
                rel_v = rel if item_mask is None else rel & item_mask[None, :]
                hits[v][rows] = np.take_along_axis(rel_v, safe_top, axis=1) & (top >= 0)
                n_rel[v][rows] = rel_v.sum(axis=1)
            bar.advance(task, len(targets))

    def per_user(v: str) -> dict[str, np.ndarray]:
        out = {}
        for k in config.ks:
            for name, fn in M.PER_USER.items():
                values = fn(hits[v], n_rel[v], k)
                if v != "all":
                    values = np.where(n_rel[v] > 0, values, np.nan)
                out[f"{name}@{k}"] = values
        return out

    catalogue = {}
    for k in config.ks:
        catalogue[f"coverage@{k}"] = M.coverage(tops, data.n_items, k) if n else 0.0
        catalogue[f"novelty@{k}"] = M.novelty(tops, item_prob, k) if n else 0.0
    return EvalResult(
        users=es.users,
        history_length=es.histories.lengths() if config.read_last is None
        else np.minimum(es.histories.lengths(), config.read_last),
        per_user=per_user("all"),
        per_user_by_popularity={v: per_user(v) for v in variants if v != "all"},
        catalogue=catalogue,
        config=config,
    )


class Validator(ValidationSet):
    """``validator(model) -> NDCG@k`` on the validation stage; what iterative models early-stop on."""

    def __init__(self, data: Interactions, labels: np.ndarray, k: int = 10) -> None:
        self.data, self.labels, self.k = data, labels, k
        self.config = EvalConfig(ks=[k])

    def subsample(self, max_users: int, seed: int = 0) -> Validator:
        """The same check on a fixed random subset of validation users, for cheap per-epoch checks."""
        users = np.unique(self.data.user[self.labels == VALID])
        if users.size <= max_users:
            return self
        keep = np.random.default_rng(seed).choice(users, max_users, replace=False)
        drop = (self.labels == VALID) & ~np.isin(self.data.user, keep)
        # Dropped validation events become HIDDEN: neither history nor target.
        return Validator(self.data, np.where(drop, HIDDEN, self.labels).astype(np.int8), self.k)

    def __call__(self, model: Recommender) -> float:
        result = evaluate(model, self.data, self.labels, VALID, self.config, breakdown=False)
        return float(result.per_user[f"ndcg@{self.k}"].mean())
