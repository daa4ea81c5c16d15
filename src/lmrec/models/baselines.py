"""Classic baselines: Popularity, ItemKNN (cosine with shrinkage) and EASE."""

from __future__ import annotations

from typing import Self

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

from lmrec.data.sequences import Interactions, Sequences
from lmrec.errors import ConfigError
from lmrec.models.base import EdgeExportable, ModelConfig, Recommender, Validator, _top_excluding_self
from lmrec.models.edge import Constant, EdgeParts, MultiHot

# Item-item models export a dense (n_items, n_items) matrix: 20,000 items is 1.6 GB of float32.
MAX_DENSE_EXPORT_ITEMS = 20_000


class PopularityConfig(ModelConfig):
    recent_fraction: float = Field(
        1.0, gt=0, le=1, description="count only the most recent share of training events (1 = all)")


class Popularity(Recommender, EdgeExportable):
    """Scores every item by its number of training events; the same list for everyone."""

    name = "pop"
    Config = PopularityConfig

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        items = train.item
        if self.config.recent_fraction < 1.0:
            cut = np.quantile(train.timestamp, 1.0 - self.config.recent_fraction)
            items = items[train.timestamp >= cut]
        self.counts = np.bincount(items, minlength=train.n_items).astype(np.float32)
        self.n_items = train.n_items
        return self

    def _score(self, histories: Sequences) -> torch.Tensor:
        return torch.from_numpy(self.counts).expand(len(histories), -1).clone()  # (B, n_items)

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        n_items = self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        sims = torch.from_numpy(self.counts).expand(len(items), -1)
        return _top_excluding_self(sims, items, k, n_items)

    def edge_parts(self) -> EdgeParts:
        ones = np.ones((self.n_items + 1, 1), np.float32)
        return EdgeParts(Constant(), {"table": ones}, self.counts[:, None].astype(np.float32), 1)

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self.counts}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.counts = state["counts"]


class _ItemItemModel(Recommender, EdgeExportable):
    """Models whose score is ``history_vector @ W`` for an item-item matrix W (n_items, n_items)."""

    W: sp.csr_matrix | np.ndarray

    def _score(self, histories: Sequences) -> torch.Tensor:
        x = histories.to_matrix(self.n_items)  # (B, n_items) binary
        s = x @ self.W
        s = s.toarray() if sp.issparse(s) else np.asarray(s)
        return torch.from_numpy(s.astype(np.float32, copy=False))  # (B, n_items)

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        return similar_by_rows(self.W, items, k, self._check_fitted())

    def edge_parts(self) -> EdgeParts:
        if self.n_items > MAX_DENSE_EXPORT_ITEMS:
            raise ConfigError(f"{self.name} exports a dense item-item matrix; {self.n_items:,} items is more than "
                              f"{MAX_DENSE_EXPORT_ITEMS:,} (export a vector model such as sasrec instead)")
        w = self.W.toarray() if sp.issparse(self.W) else np.asarray(self.W)
        ones = np.ones((self.n_items + 1, 1), np.float32)
        # score_j = sum over history items i of W[i, j]: item j's vector is column j.
        return EdgeParts(MultiHot(), {"table": ones}, np.ascontiguousarray(w.T, dtype=np.float32), None)


def similar_by_rows(w: sp.csr_matrix | np.ndarray, items: np.ndarray, k: int, n_items: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``similar_items`` of an item-item matrix: the largest entries of each item's row."""
    items = np.asarray(items, dtype=np.int64)
    rows = w[items]
    rows = rows.toarray() if sp.issparse(rows) else np.asarray(rows)
    return _top_excluding_self(torch.from_numpy(rows.astype(np.float32)), items, k, n_items)


class ItemKNNConfig(ModelConfig):
    neighbors: int = Field(100, ge=1, description="similar items kept per item")
    shrink: float = Field(10.0, ge=0, description="cosine shrinkage: x.y / (|x||y| + shrink)")


class ItemKNN(_ItemItemModel):
    """Item-based collaborative filtering with shrunk cosine similarity (Sarwar et al. 2001)."""

    name = "itemknn"
    Config = ItemKNNConfig

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        x = train.to_matrix()  # (n_users, n_items) binary
        co = (x.T @ x).tocsr().astype(np.float32)  # (n_items, n_items) co-occurrence counts
        norms = np.sqrt(co.diagonal())
        co.setdiag(0)
        co.eliminate_zeros()
        co = co.tocoo()
        sim = co.data / (norms[co.row] * norms[co.col] + self.config.shrink)
        self.W = _keep_top_per_row(sp.csr_matrix((sim, (co.row, co.col)), shape=co.shape), self.config.neighbors)
        self.n_items = train.n_items
        return self

    def _state(self) -> dict[str, np.ndarray]:
        return {"data": self.W.data, "indices": self.W.indices.astype(np.int64), "indptr": self.W.indptr.astype(np.int64)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.W = sp.csr_matrix((state["data"], state["indices"], state["indptr"]), shape=(self.n_items, self.n_items))


def _keep_top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties broken by column order)."""
    m.sort_indices()
    data, indices, indptr = [], [], [0]
    for r in range(m.shape[0]):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        d = m.data[lo:hi]
        if d.size > k:
            keep = np.sort(np.argpartition(-d, k - 1)[:k])
            data.append(d[keep])
            indices.append(m.indices[lo:hi][keep])
        else:
            data.append(d)
            indices.append(m.indices[lo:hi])
        indptr.append(indptr[-1] + len(data[-1]))
    return sp.csr_matrix((np.concatenate(data).astype(np.float32), np.concatenate(indices), np.array(indptr)),
                         shape=m.shape)


class EASEConfig(ModelConfig):
    l2: float = Field(500.0, gt=0, description="L2 regularisation (lambda) of the item-item weights")


class EASE(_ItemItemModel):
    """Embarrassingly Shallow Autoencoder (Steck 2019): closed-form item-item regression with a
    zero diagonal. Dense (n_items, n_items): fine up to a few tens of thousands of items."""

    name = "ease"
    Config = EASEConfig

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        x = train.to_matrix()
        g = torch.from_numpy((x.T @ x).toarray().astype(np.float64))  # (n_items, n_items) Gram matrix
        g.diagonal().add_(self.config.l2)
        p = torch.linalg.inv(g)
        b = p / (-p.diagonal())  # column j divided by -P_jj
        b.diagonal().zero_()
        self.W = b.float().numpy()
        self.n_items = train.n_items
        return self

    def _state(self) -> dict[str, np.ndarray]:
        return {"W": self.W}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.W = state["W"]
