"""Transitions: which items follow which, summed over users, each user's votes scaled to one unit.

W[i, j] = sum over users u of C_u[i, j] / ||C_u||_F, where C_u[i, j] counts how often j follows i
in u's history within ``window`` events, a follower g events later counting ``decay ** (g - 1)``.
A history is scored from its last ``recent`` events: score(j) = sum over g of 0.5 ** (g - 1) *
W[h[-g], j], g = 1 the latest (ties, e.g. an empty history: the items most often followed to first).

Scaling every user's matrix to norm 1 bounds what one user can change in W, in L2, by 1. That
makes user-level differential privacy one Gaussian mechanism on the sum (``privacy.dp``,
``lmrec.privacy.dp``): noise of std ``noise_multiplier`` on every entry, no per-step noise as in
DP-SGD. The dense noisy matrix needs n_items^2 floats, so DP is limited to MAX_DP_ITEMS items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from lmrec.data.sequences import Interactions, Sequences
from lmrec.errors import ConfigError
from lmrec.models.base import ModelConfig, PrivatelyReleasable, Recommender, Validator
from lmrec.models.baselines import similar_by_rows

MAX_DP_ITEMS = 20_000  # the dense noisy matrix: 1.6 GB of float32
TIE_WEIGHT = 1e-6  # how much the "most often followed to" prior weighs: ties only


class TransitionsConfig(ModelConfig):
    window: int = Field(10, ge=1, description="each event votes for the items that follow it within this many events")
    decay: float = Field(0.7, gt=0, le=1, description="a follower g events later counts decay ** (g - 1)")
    recent: int = Field(3, ge=1, description="a history is scored from its last this many events, each counting half "
                        "as much as the one after it")


class Transitions(Recommender, PrivatelyReleasable):
    """Which items follow the history's last events, counted over a window, one unit of vote per user.

    Defaults chosen on ML-1M validation at epsilon 8 (docs/benchmarks.md): window 10 over 1 and 3,
    the last 3 events over the last one."""

    name = "transitions"
    Config = TransitionsConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._release: tuple[float, Callable[[], None]] | None = None

    def release_privately(self, noise_multiplier: float, on_release: Callable[[], None]) -> None:
        self._release = (noise_multiplier, on_release)

    def _spawn(self, config, training) -> Self:
        twin = super()._spawn(config, training)
        twin._release = self._release  # the refit is a release too: the same noise multiplier, a fresh draw
        return twin

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        n, cfg = train.n_items, self.config
        if self._release is not None and n > MAX_DP_ITEMS:
            raise ConfigError(f"privacy.dp: model 'transitions' adds noise to a dense {n:,} x {n:,} matrix; at most "
                              f"{MAX_DP_ITEMS:,} items")
        seqs = train.sequences()
        rows, cols, vals, owner = [], [], [], []
        for g in range(1, cfg.window + 1):
            lengths = seqs.lengths()
            has = lengths > g
            if not has.any():
                break
            # pairs (s[t], s[t + g]) of every sequence long enough, as flat index arrays
            starts = seqs.indptr[:-1][has]
            counts = lengths[has] - g
            offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
            first = np.repeat(starts, counts) + offsets
            rows.append(seqs.values[first])
            cols.append(seqs.values[first + g])
            vals.append(np.full(first.size, cfg.decay ** (g - 1)))
            owner.append(np.repeat(np.flatnonzero(has), counts))
        if rows:
            users, pair = np.concatenate(owner), np.concatenate(rows) * n + np.concatenate(cols)
            # one entry per (user, i, j): sorted by user, then pair (no user * n^2 key to overflow)
            order = np.lexsort((pair, users))
            users, pair, weight = users[order], pair[order], np.concatenate(vals)[order]
            first = np.flatnonzero(np.r_[True, (users[1:] != users[:-1]) | (pair[1:] != pair[:-1])])
            u, p, v = users[first], pair[first], np.add.reduceat(weight, first)  # C_u[i, j]
            norms = np.sqrt(np.bincount(u, weights=v**2, minlength=len(seqs)))  # ||C_u||_F
            w = sp.csr_matrix(((v / norms[u]).astype(np.float32), (p // n, p % n)), shape=(n, n))
        else:
            w = sp.csr_matrix((n, n), dtype=np.float32)
        if self._release is not None:
            noise, on_release = self._release
            dense = w.toarray()
            # From the OS's entropy, never the run's seed: noise that can be drawn again protects nothing.
            dense += noise * np.random.default_rng().standard_normal(dense.shape, dtype=np.float32)
            on_release()
            w = dense
        self._set(w)
        self.n_items = n
        return self

    def _set(self, w: sp.csr_matrix | np.ndarray) -> None:
        """The matrix, and the tie-breaking prior derived from it once (not per scored batch)."""
        self.W = w
        s = np.asarray(w.sum(axis=0)).ravel()
        self.prior = (TIE_WEIGHT * s / max(float(np.abs(s).max()), 1e-12)).astype(np.float32)  # (n_items,)

    def _score(self, histories: Sequences) -> torch.Tensor:
        recent = histories.suffixes(self.config.recent)
        # weight of each kept event: 1 for the latest, 0.5 for the one before, ...
        position = np.arange(recent.values.size) - np.repeat(recent.indptr[:-1], recent.lengths())
        age = np.repeat(recent.lengths(), recent.lengths()) - 1 - position
        q = sp.csr_matrix((0.5 ** age, recent.values, recent.indptr), shape=(len(recent), self.n_items))
        s = q @ self.W  # (B, n_items)
        s = s.toarray() if sp.issparse(s) else np.asarray(s)
        return torch.from_numpy((s + self.prior).astype(np.float32, copy=False))

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        return similar_by_rows(self.W, items, k, self._check_fitted())

    def _state(self) -> dict[str, np.ndarray]:
        if sp.issparse(self.W):
            return {"data": self.W.data, "indices": self.W.indices.astype(np.int64),
                    "indptr": self.W.indptr.astype(np.int64)}
        return {"W": self.W}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self._set(state["W"] if "W" in state else sp.csr_matrix(
            (state["data"], state["indices"], state["indptr"]), shape=(self.n_items, self.n_items)))
