"""SASRec with items represented by their ID embedding *and* the sentence embedding of their text.

Item representation (used on the input side and, tied, on the output side):

    fused:  e_i = A(t_i) + m_i * id_i + (1 - m_i) * mean(id_j, j in N(i))
    text:   e_i = A(t_i)                 id: e_i = id_i (plain SASRec)

``t_i`` is the frozen sentence-encoder vector of the item's content (PCA-whitened over the
catalogue by default, see ``content.vectors.Whitening``), ``A`` a small learned
adapter (MLP), and ``m_i`` is 0 for items with no training events. Such an item has no ID
embedding of its own, so it borrows the mean ID embedding of its ``cold_neighbours`` nearest
items by content among those with events (N(i)): an item nobody has touched is placed in the
ID space next to the items it resembles and can be recommended zero-shot. Items with events
have ``m_i = 1``, or with ``id_shrinkage`` k ``m_i = c_i / (c_i + k)`` for c_i training events: an
item seen a few times is pulled towards its content neighbours, as a hierarchical model shrinks
a poorly estimated parameter towards its group's mean. During training
the ID part of whole items is swapped for the borrowed one at random (``id_dropout``), which
teaches the Transformer that representation: the sparse-user, tail- and cold-item case.

Scores add a second, untrained content channel: ``w * profile(u) . t_i``, the text-knn score
(recency-weighted sum of the text vectors of the user's recent items, dotted with the item's).
It is one more block of the same inner product, so ANN retrieval over
``query_vectors`` / ``output_item_vectors`` still ranks exactly; ``w`` is chosen on the
validation users after training (``text_knn_weight: auto``), or by a second model that, like
the trained one at test time, has not seen the latest event of the user's input (``lagged``).
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, Self

import numpy as np
import polars as pl
import torch
from pydantic import Field
from torch import nn

from lmrec.content.encoder import DEFAULT_MODEL, check_attached, text_columns
from lmrec.content.vectors import Whitening, catalogue_vectors, new_item_vectors, text_query_vectors
from lmrec.data.profile import DataProfile
from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import without_last_events
from lmrec.models.base import HasContentVectors, Validator
from lmrec.models.edge import EdgeParts, LastStateWithProfile, padded
from lmrec.models.sasrec import SASRec, SASRecConfig, SASRecNet
from lmrec.models.textknn import recency_profile
from lmrec.training.config import Auto
from lmrec.training.trainer import concrete

KNN_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
KNN_EVENTS = 50  # text-knn reads this many latest events (0.8**50: the older ones weigh nothing)


class SASRecTextConfig(SASRecConfig):
    fusion: Literal["fused", "text", "id"] = Field("fused", description="item view(s) the model uses")
    encoder: str = Field(DEFAULT_MODEL, description="sentence-transformers model name or local path")
    text_columns: list[str] | None = Field(None, description="item columns to encode (default: every string column)")
    whitening: float | None = Field(
        0.1, ge=0, description="PCA-whiten the text vectors over the catalogue (variances shrunk towards their "
        "mean by this much) before the adapter, the neighbour search and the text-knn channel, so that what "
        "all titles share does not dominate (Beauty NDCG@10 0.0653 -> 0.0686, tail items 0.0364 -> 0.0428: "
        "docs/benchmarks.md); None: the raw sentence-encoder vectors")
    adapter_hidden: int = Field(256, ge=1, description="hidden width of the text adapter MLP")
    id_dropout: float = Field(0.1, ge=0, lt=1, description="share of items whose ID embedding is dropped per batch")
    id_shrinkage: Annotated[float, Field(ge=0)] | Auto = Field(
        "auto", description="auto: 3. k: an item with c training events uses c / (c + k) of its own ID embedding and "
        "the rest borrowed from its content neighbours (cold_neighbours), so that an item seen a few times leans "
        "on items that read alike (Beauty, k=3: NDCG@10 0.0690 -> 0.0729, tail items 0.0455 -> 0.0511: docs/benchmarks.md); "
        "0: every item with events uses its own ID alone")
    cold_neighbours: int = Field(
        10, ge=0, description="items without events (and dropped IDs) borrow the mean ID embedding of this many "
        "nearest items by content; 0: content alone")
    item_vector_weight: float = Field(
        1.0, gt=0, description="scale of the (unit) extra vectors next to the unit text vector: their share of "
        "the text-knn channel's cosine")
    text_knn_weight: float | Literal["auto", "lagged"] = Field(
        "auto", description="weight of the untrained text-knn score added to the Transformer's score; auto: the "
        f"best of {KNN_WEIGHTS} on the validation users (0 when fusion is id or there is no validation); "
        "lagged: the same search run with a second model, fitted without each user's last training event, so that "
        "one unseen event separates its training data from the validation target, as at test time (doubles the "
        "training time; auto under-weights content because the Transformer is stronger on validation than on "
        "test: docs/benchmarks.md)")
    text_knn_train_weight: float = Field(
        0.0, ge=0, description="weight of the text-knn score inside the training softmax (0: the channel is only "
        "added after training): with it the Transformer learns what the content score misses instead of "
        "relearning it")
    text_knn_decay: float = Field(0.8, gt=0, le=1, description="text-knn recency weight of the j-th latest event: decay**j")


def content_neighbours(content: torch.Tensor, warm: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """(n_tokens, k) tokens of the k items with events most cosine-similar to each token's content.

    content (n_tokens, T) with row 0 the padding token, warm (n_tokens,) 1 for items with events.
    An item is never its own neighbour; the padding row gets padding (whose ID row is zero).
    """
    n = len(content)
    k = min(k, int(warm.sum()) - 1) if k else 0
    if k <= 0:
        return torch.zeros(n, 0, dtype=torch.long)
    unit = torch.nn.functional.normalize(content.float(), dim=1)  # (n, T)
    candidates = torch.nonzero(warm > 0).squeeze(1)  # (W,)
    out = torch.zeros(n, k, dtype=torch.long)
    for s in range(1, n, chunk):
        sims = unit[s : s + chunk] @ unit[candidates].T  # (C, W)
        rows = torch.arange(s, min(s + chunk, n))
        sims[rows[:, None] == candidates[None, :]] = float("-inf")  # not itself
        out[s : s + chunk] = candidates[sims.topk(k, dim=1).indices]
    return out


class TextSASRecNet(SASRecNet):
    def __init__(self, cfg: SASRecTextConfig, n_items: int, text: torch.Tensor, warm: torch.Tensor) -> None:
        super().__init__(cfg, n_items)
        self.fusion, self.id_dropout = cfg.fusion, cfg.id_dropout
        # Buffers are part of the state dict: a saved model needs no text encoder to serve.
        self.register_buffer("text", torch.cat([torch.zeros(1, text.shape[1]), text]))  # (n_items + 1, T)
        self.register_buffer("warm", torch.cat([torch.zeros(1), warm.float()]))  # (n_items + 1,)
        self.adapter = nn.Sequential(nn.Linear(text.shape[1], cfg.adapter_hidden), nn.GELU(),
                                     nn.Linear(cfg.adapter_hidden, cfg.d_model))
        # Not persistent: recomputed from text and warm whenever the net is built (load, add_items).
        self.register_buffer("neighbours", content_neighbours(self.text, self.warm, cfg.cold_neighbours),
                             persistent=False)  # (n_items + 1, k) tokens
        # The text-knn channel's item vectors (unit length: modalities are concatenated), made once
        # per build instead of on every scoring call.
        self.register_buffer("unit_text", nn.functional.normalize(self.text[1:], dim=1),
                             persistent=False)  # (n_items, T)
        # Saved with the weights: "auto" and "lagged" are resolved on validation after training.
        weight = 0.0 if isinstance(cfg.text_knn_weight, str) else cfg.text_knn_weight
        self.register_buffer("knn_weight", torch.tensor(float(weight)))

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, D) representation of every token; row 0 (padding) is zero."""
        if self.fusion == "id":
            table = self.item_emb.weight
        else:
            table = self.adapter(self.text)  # (n_items + 1, D)
            if self.fusion == "fused":
                keep = self.warm  # (n_items + 1,) share of the item's own ID, 0 for items without events
                if self.training and self.id_dropout > 0:
                    keep = keep * (torch.rand_like(keep) >= self.id_dropout)
                ids = self.item_emb.weight  # (n_items + 1, D)
                table = table + keep[:, None] * ids
                if self.neighbours.shape[1]:
                    # Only rows short of their own ID borrow (cold and rare items, dropped IDs, padding),
                    # and embedding_bag avoids a (rows, k, D) gather: on Beauty the borrowing over every
                    # row took 60 of the 135 ms of a training step.
                    rows = torch.nonzero(keep < 1).squeeze(1)  # (R,)
                    near = self.neighbours[rows]  # (R, k)
                    borrowed = nn.functional.embedding_bag(near, ids, mode="mean")  # (R, D)
                    # Averaging shortens the vector (and its score); give it the neighbours' typical length.
                    length = nn.functional.embedding_bag(near, ids.norm(dim=1, keepdim=True), mode="mean")  # (R, 1)
                    borrowed = borrowed * (length / borrowed.norm(dim=1, keepdim=True).clamp_min(1e-8))
                    table = table.index_add(0, rows, ((1 - keep[rows])[:, None] * borrowed).to(table.dtype))
        return table * (torch.arange(table.shape[0], device=table.device) > 0)[:, None]


class SASRecText(SASRec, HasContentVectors):
    """SASRec over items represented by ID and pretrained-language-model text embeddings."""

    name = "sasrec-text"
    Config = SASRecTextConfig
    uses_item_content = True

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.text_vectors: np.ndarray | None = None
        self.warm: np.ndarray | None = None
        self.whitening: Whitening | None = None
        self.knn_validation: dict[float, float] = {}  # text-knn weight -> validation NDCG@10 (auto)

    def attach_items(self, item_info: pl.DataFrame | None, item_vectors: list[str] | tuple[str, ...] = ()) -> None:
        """Content vector of every catalogue item: its text embedding, then any extra modality vectors."""
        if item_info is not None:  # resolved once, so items added later are described by the same columns
            self.config = self.config.model_copy(update={"text_columns": text_columns(item_info,
                                                                                      self.config.text_columns)})
        cfg = self.config
        self.text_vectors, self.whitening = catalogue_vectors(
            item_info, encoder=cfg.encoder, columns=cfg.text_columns, item_vectors=list(item_vectors),
            weight=cfg.item_vector_weight, whitening=cfg.whitening, progress=self.runtime.progress,
            who=self.name)  # (n_items, T): the adapter's input

    def _spawn(self, config, training) -> Self:
        model = super()._spawn(config, training)
        model.text_vectors, model.whitening = self.text_vectors, self.whitening
        return model

    def content_neighbours(self, allowed: np.ndarray) -> torch.Tensor:
        """(n_items + 1,) token -> token of the ``allowed`` item whose text is most similar (itself
        excluded; padding maps to padding): contrastive augmentation's substitution."""
        unit = nn.functional.normalize(torch.from_numpy(self.text_vectors).float(), dim=1)  # (n_items, T)
        out = torch.zeros(len(unit) + 1, dtype=torch.long)
        blocked = torch.from_numpy(~np.asarray(allowed, dtype=bool))
        for s in range(0, len(unit), 2048):
            sims = unit[s : s + 2048] @ unit.T  # (C, n_items)
            sims[:, blocked] = -torch.inf
            sims[torch.arange(len(sims)), torch.arange(s, s + len(sims))] = -torch.inf
            out[s + 1 : s + 1 + len(sims)] = sims.argmax(dim=1) + 1
        return out

    def auto_values(self, p: DataProfile) -> dict[str, Any]:
        # Beauty (sparse): d_model 128 validated above 64 (0.0721 vs 0.0711); id_shrinkage 3 (eighth session).
        return super().auto_values(p) | {"d_model": 128 if p.regime == "sparse" else 64, "id_shrinkage": 3.0}

    def fits_per_training(self) -> int:
        return 2 if self.config.text_knn_weight == "lagged" and self.config.fusion != "id" else 1

    def _prepare(self, train: Interactions) -> None:
        check_attached(self.text_vectors, train.n_items, self.name)
        counts, k = train.item_counts().astype(np.float32), concrete(self.config.id_shrinkage, "id_shrinkage")
        self.warm = counts / (counts + k) if k else (counts > 0).astype(np.float32)  # own-ID share, 0: no events
        if self.config.fusion != "id":  # content vectors stand for the items without events; see SequentialRecommender
            self._softmax_items = torch.from_numpy(np.flatnonzero(self.warm))

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        self.resolve_auto(train)
        mode = self.config.text_knn_weight
        lagged = mode == "lagged" and self.config.fusion != "id" and valid is not None
        budget = self._fit_budget(time_budget_s)
        started = time.perf_counter()
        super().fit(train, valid, time_budget_s=budget / 2 if lagged else budget)
        self.knn_validation = {}
        if mode not in ("auto", "lagged") or self.config.fusion == "id" or valid is None:
            return self
        if lagged:
            # The judge shares the budget's second half; it never uses the checkpoint directory
            # (it would resume from the served model's checkpoints).
            judge = self._spawn(self.config.model_copy(update={"text_knn_weight": "auto"}), self.training)
            judge.runtime = self.runtime.model_copy(update={"checkpoint_dir": None})
            rest = max(0.0, budget - (time.perf_counter() - started))
            self.knn_validation = judge.fit(without_last_events(train), valid, time_budget_s=rest).knn_validation
        else:
            check = self._validator(valid)
            for w in KNN_WEIGHTS:
                self.net.knn_weight.fill_(w)
                self.knn_validation[w] = check()  # validation NDCG@10
        self.net.knn_weight.fill_(max(self.knn_validation, key=self.knn_validation.get))
        return self

    def dp_unsupported(self) -> str | None:
        if self.config.fusion == "fused":
            return ("sasrec-text with fusion 'fused' drops ID rows at random and borrows neighbours' IDs by "
                    "data-dependent indexing, which per-user gradients cannot batch; set model.fusion = 'text' "
                    "(content only: no private ID table) or 'id'")
        return None

    def _extra_score_blocks(self, inputs, valid, h, weights):
        w = self.config.text_knn_train_weight
        if not w or self.config.fusion == "id":
            return h, weights
        # The text-knn profile after every position: a causal, recency-weighted sum over the last
        # KNN_EVENTS events, as recency_profile computes it for one history at inference.
        unit = self.net.unit_text  # (n_items, T)
        vectors = nn.functional.embedding(inputs, torch.cat([unit.new_zeros(1, unit.shape[1]), unit]))  # (B, L, T)
        L = inputs.shape[1]
        lag = torch.arange(L, device=inputs.device)
        lag = lag[:, None] - lag[None, :]  # (L, L): t - j
        decay = torch.where((lag >= 0) & (lag < KNN_EVENTS), self.config.text_knn_decay ** lag.clamp(min=0).float(), 0.0)
        profile = torch.einsum("tj,bjd->btd", decay, vectors)[valid]  # (N, T)
        return torch.cat([h, w * profile.to(h.dtype)], dim=1), torch.cat([weights, unit.to(weights.dtype)], dim=1)

    def fit_notes(self) -> list[str]:
        if not self.knn_validation:
            return []
        scores = ", ".join(f"{w:g}: {v:.4f}" for w, v in self.knn_validation.items())
        judge = "a model fitted without each user's last event" if self.config.text_knn_weight == "lagged" else "the model"
        return [f"text-knn weight by validation NDCG@10 of {judge} ({scores}); picked {float(self.net.knn_weight):g}"]

    def refit_config(self) -> SASRecTextConfig:
        return super().refit_config().model_copy(update={"text_knn_weight": float(self.net.knn_weight)})

    # --- inference: the Transformer's inner product plus the text-knn block -------------------
    def query_vectors(self, histories: Sequences) -> torch.Tensor:
        """(B, D [+ T]) user states; the text-knn block is the user's recency-weighted text profile."""
        q = super().query_vectors(histories)  # (B, D)
        w = float(self.net.knn_weight)
        if not w:
            return q
        profile = recency_profile(histories, self.net.unit_text, KNN_EVENTS, self.config.text_knn_decay)  # (B, T)
        return torch.cat([q, w * profile], dim=1)  # (B, D + T)

    def output_item_vectors(self) -> torch.Tensor:
        items = super().output_item_vectors()  # (n_items, D)
        return torch.cat([items, self.net.unit_text], dim=1) if float(self.net.knn_weight) else items

    def edge_parts(self) -> EdgeParts:
        parts = super().edge_parts()
        w = float(self.net.knn_weight)
        if not w:
            return parts
        encoder = LastStateWithProfile(self.net, self.config.max_len, w, self.config.text_knn_decay, KNN_EVENTS)
        return EdgeParts(encoder, parts.tables | {"text": padded(self.net.unit_text.numpy())}, parts.items,
                         max(self.config.max_len, KNN_EVENTS))

    def content_vectors(self) -> np.ndarray:
        return self.text_vectors

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return text_query_vectors(texts, encoder=self.config.encoder, dim=self.text_vectors.shape[1],
                                  whitening=self.whitening)

    def _item_vectors(self) -> torch.Tensor:
        return super().output_item_vectors()  # similar items: the model's own item space

    def build_net(self, n_items: int) -> TextSASRecNet:
        return TextSASRecNet(self.config, n_items, torch.from_numpy(self.text_vectors), torch.from_numpy(self.warm))

    def add_items(self, item_info: pl.DataFrame) -> None:
        """New items get their text vector (through the whitening fitted at training time) and
        warm=0: content plus the ID embedding borrowed from their nearest items (their own ID row is
        zero and never used). Extra modality vectors of new items are zero (the files were read at
        training time).
        """
        state = self._state()
        new = new_item_vectors(item_info, encoder=self.config.encoder, columns=self.config.text_columns,
                               dim=state["text"].shape[1], whitening=self.whitening, who=self.name)
        d = state["item_emb.weight"].shape[1]
        state["text"] = np.concatenate([state["text"], new])
        state["warm"] = np.concatenate([state["warm"], np.zeros(len(new), dtype=np.float32)])
        state["item_emb.weight"] = np.concatenate([state["item_emb.weight"], np.zeros((len(new), d), np.float32)])
        self.n_items += len(new)
        self._load_state(state)

    def _state(self) -> dict[str, np.ndarray]:
        return super()._state() | (self.whitening.state() if self.whitening else {})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        state = dict(state)
        self.whitening = Whitening.from_state(state)
        self.text_vectors = state["text"][1:]
        self.warm = state["warm"][1:]
        super()._load_state(state)
