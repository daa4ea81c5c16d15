"""Top-k retrieval for serving: exact scoring, or a faiss HNSW index for large catalogues.

The index serves models whose score is an inner product between a user state and item
vectors (``query_vectors`` / ``output_item_vectors``, the sequence models). Seen items are
removed after the search, so it asks for k + len(history) neighbours.
"""

from __future__ import annotations

import numpy as np

from lmrec.data.sequences import Sequences
from lmrec.errors import LmrecError
from lmrec.models.base import Recommender


class ExactRetriever:
    def __init__(self, model: Recommender) -> None:
        self.model = model

    def recommend(self, histories: Sequences, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        return self.model.recommend(histories, k, exclude_seen=exclude_seen)


class FaissRetriever:
    """Approximate maximum-inner-product search with an HNSW graph (faiss)."""

    def __init__(self, model: Recommender, *, m: int = 32, ef_search: int = 128, ef_construction: int = 200) -> None:
        if not hasattr(model, "query_vectors"):
            raise LmrecError(f"model {model.name!r} has no vector form; use exact retrieval")
        try:
            import faiss
        except ImportError as exc:
            raise LmrecError("nearest-neighbour retrieval needs faiss: pip install 'lmrec[serve]'") from exc
        self.model = model
        vectors = np.ascontiguousarray(model.output_item_vectors().numpy(), dtype=np.float32)  # (n_items, D)
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.add(vectors)
        self.index.hnsw.efSearch = ef_search

    def recommend(self, histories: Sequences, k: int, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(self.model.query_vectors(histories).numpy(), dtype=np.float32)  # (B, D)
        extra = int(histories.lengths().max()) if exclude_seen and len(histories) else 0
        n = min(k + extra, self.index.ntotal)
        self.index.hnsw.efSearch = max(self.index.hnsw.efSearch, n)
        scores, items = self.index.search(q, n)  # (B, n), best first; -1 where the graph found fewer
        out_i = np.full((len(histories), k), -1, dtype=np.int64)
        out_s = np.full((len(histories), k), -np.inf, dtype=np.float32)
        for r in range(len(histories)):
            keep = items[r] >= 0
            if exclude_seen:
                keep &= ~np.isin(items[r], histories[r])
            found_i, found_s = items[r][keep][:k], scores[r][keep][:k]
            out_i[r, : found_i.size], out_s[r, : found_s.size] = found_i, found_s
        return out_i, out_s


def make_retriever(model: Recommender, kind: str = "auto", *, faiss_above: int = 50_000):
    """``exact``, ``faiss``, or ``auto``: faiss for vector models with catalogues above ``faiss_above`` items."""
    if kind == "exact" or (kind == "auto" and (model.n_items <= faiss_above or not hasattr(model, "query_vectors"))):
        return ExactRetriever(model)
    if kind in ("faiss", "auto"):
        return FaissRetriever(model)
    raise LmrecError(f"retrieval must be exact, faiss or auto, got {kind!r}")
