"""Content baseline with no training: recency-weighted cosine similarity between the sentence
embeddings (optionally whitened) of the user's history and every item's text (plus, when given, the cosine of each
extra per-item vector: attributes, image, audio).

It is the yardstick for the text-fused models and a cold-start fallback: an item with no
events at all is ranked by its text alone.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import polars as pl
import torch
from pydantic import Field

from lmrec.content.encoder import DEFAULT_MODEL, check_attached, text_columns
from lmrec.content.vectors import Whitening, catalogue_vectors, new_item_vectors, text_query_vectors
from lmrec.data.sequences import Interactions, Sequences
from lmrec.models.base import EdgeExportable, HasContentVectors, ModelConfig, Recommender, Validator
from lmrec.models.edge import EdgeParts, Profile, padded


def recency_profile(histories: Sequences, vectors: torch.Tensor, max_len: int, decay: float) -> torch.Tensor:
    """(B, D) sum of the vectors of each user's last max_len items, the j-th most recent weighted decay**j.

    vectors (n_items, D); an empty history gives a zero profile (so it scores 0 everywhere).
    """
    recent = histories.to_padded(max_len, pad=-1)  # (B, L), most recent last
    L = recent.shape[1]
    weights = decay ** np.arange(L - 1, -1, -1, dtype=np.float32)  # (L,)
    weights = np.where(recent >= 0, weights[None, :], 0.0).astype(np.float32)  # (B, L)
    return torch.einsum("bl,bld->bd", torch.from_numpy(weights), vectors[torch.from_numpy(np.maximum(recent, 0))])


class TextKNNConfig(ModelConfig):
    encoder: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or local path")
    text_columns: list[str] | None = Field(None, description="item columns to encode (default: every string column)")
    item_vector_weight: float = Field(1.0, gt=0, description="weight of each extra vector's cosine next to the text's")
    whitening: float | None = Field(
        None, ge=0, description="PCA-whiten the text vectors over the catalogue, variances shrunk towards their "
        "mean by this much (0.1 works well), so the cosine is not dominated by what all titles share; None: the "
        "raw cosine, the yardstick of docs/benchmarks.md (Beauty NDCG@10: 0.0343 raw, 0.0454 whitened)")
    recency_decay: float = Field(0.8, gt=0, le=1, description="weight of the j-th most recent event: decay**j")
    max_len: int = Field(50, ge=1, description="most recent events used")


class TextKNN(Recommender, HasContentVectors, EdgeExportable):
    """Recency-weighted cosine between the user's item texts and every item's text (no training)."""

    name = "text-knn"
    Config = TextKNNConfig
    uses_item_content = True

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.vectors: np.ndarray | None = None
        self.whitening: Whitening | None = None

    def attach_items(self, item_info: pl.DataFrame | None, item_vectors: list[str] | tuple[str, ...] = ()) -> None:
        if item_info is not None:  # resolved once, so items added later are described by the same columns
            self.config = self.config.model_copy(update={"text_columns": text_columns(item_info,
                                                                                      self.config.text_columns)})
        cfg = self.config
        self.vectors, self.whitening = catalogue_vectors(
            item_info, encoder=cfg.encoder, columns=cfg.text_columns, item_vectors=list(item_vectors),
            weight=cfg.item_vector_weight, whitening=cfg.whitening, progress=self.runtime.progress, who=self.name)

    def add_items(self, item_info: pl.DataFrame) -> None:
        """New items get their text vector (through the whitening fitted at training time); their
        extra modality vectors are zero (the files were read by attach_items)."""
        new = new_item_vectors(item_info, encoder=self.config.encoder, columns=self.config.text_columns,
                               dim=self.vectors.shape[1], whitening=self.whitening, who=self.name)
        self.vectors = np.concatenate([self.vectors, new])
        self.n_items = len(self.vectors)

    def _spawn(self, config, training) -> Self:
        model = super()._spawn(config, training)
        model.vectors, model.whitening = self.vectors, self.whitening
        return model

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        check_attached(self.vectors, train.n_items, self.name)
        self.n_items = train.n_items
        return self

    def _score(self, histories: Sequences) -> torch.Tensor:
        v = torch.from_numpy(self.vectors)  # (n_items, D)
        return recency_profile(histories, v, self.config.max_len, self.config.recency_decay) @ v.T  # (B, n_items)

    def _item_vectors(self) -> torch.Tensor:
        return torch.from_numpy(self.vectors)

    def edge_parts(self) -> EdgeParts:
        cfg = self.config
        return EdgeParts(Profile(cfg.recency_decay, cfg.max_len), {"text": padded(self.vectors)}, self.vectors,
                         cfg.max_len)

    def content_vectors(self) -> np.ndarray:
        return self.vectors

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return text_query_vectors(texts, encoder=self.config.encoder, dim=self.vectors.shape[1],
                                  whitening=self.whitening)

    def _state(self) -> dict[str, np.ndarray]:
        return {"vectors": self.vectors} | (self.whitening.state() if self.whitening else {})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        state = dict(state)
        self.whitening = Whitening.from_state(state)
        self.vectors = state["vectors"]
