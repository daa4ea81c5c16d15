"""Interest prediction: P(like | history, candidate item) with a Transformer (``--model interest``).

The history is a sequence of (item, label) tokens, label in {dislike, like, unlabelled}, read by a
causal Transformer encoder; the candidate item is the query of one cross-attention over the
encoded history (target attention, as in DIN / BST), and a small MLP over [attended history,
candidate, their product, the user's like rate] plus an item bias gives the logit. Trained with binary cross-entropy
on every labelled event of the training part, each predicted from the events before it, in one
pass per window (causal masks), like SASRec's next-item training. Early stopping on the
validation AUC; then (``blend``) P(like) becomes a logistic regression, fitted on the validation
events, over the Transformer's logit, a biased factorisation and the user's recent surprise
(lmrec.models.interest_blend).

Tokens: 0 padding, item i is i + 1, ``n_items + 1`` is a start token (BOS) that opens every
history short enough to be read whole, so a user's first event and a brand-new user are
predicted from it. Some history labels are hidden during training (``label_dropout``), so
histories without labels (the ranking contract, implicit events) are inputs the model knows.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from scipy.special import expit
from torch import nn

from lmrec.data.labels import UNLABELLED, rating_targets
from lmrec.data.profile import DataProfile
from lmrec.data.sequences import Interactions, Sequences
from lmrec.errors import ConfigError
from lmrec.evaluation.interest import InterestValidator
from lmrec.models.base import InterestPredictor, Validator
from lmrec.models.interest_blend import PREFIX, InterestBlend
from lmrec.models.layers import Dropout
from lmrec.models.sasrec import Block, SASRecConfig
from lmrec.models.sequential import NeuralRecommender, SequentialConfig
from lmrec.training.config import Auto, Positive
from lmrec.training.hooks import StepOutput

UNKNOWN = 2  # label token of unlabelled events, the start token and padding (0 dislike, 1 like)
MAX_ATTENTION_ELEMENTS = 2e7  # (rows, heads, candidates, history) per inference chunk: ~80 MB of fp32
# Validation AUC (twenty-first session): a scratch version, 2 seeds, gave 0.782 / 0.787 / 0.789 / 0.788
# at weight 0 / 0.5 / 2 / 5 on ML-100K and 0.772 / 0.779 at 0 / 2 on ml-latest-small; the built one,
# 4 seeds on ML-100K, 0.7863 at 2 against 0.7841 without (within one standard error).
RATING_WEIGHT = 2.0
BLEND_SHARE = 0.2  # of the fit's budget, for the blend's factorisation (12 settings: 30-40 s on ML-100K)


class InterestConfig(SequentialConfig):
    n_layers: int = Field(2, ge=1, description="Transformer blocks over the history")
    n_heads: Positive = Field(2, description="attention heads (self- and cross-attention)")
    label_dropout: float = Field(
        0.1, ge=0, lt=1, description="share of history labels hidden in training, so histories whose events "
        "carry no label (implicit feedback, the ranking contract) are inputs the model has seen")
    rating_weight: Annotated[float, Field(ge=0)] | Auto = Field(
        "auto", description="weight of an auxiliary loss that predicts each training event's rating (squared error on "
        f"standardised ratings) beside its like / dislike label: a 2 and a 3 are both dislikes but not alike (auto: "
        f"{RATING_WEIGHT:g} when the training events carry ratings, else 0)")
    blend: Literal["validation", "off"] = Field(
        "validation", description="validation: after training, blend the Transformer's logit with a biased "
        "factorisation of the training events and the user's recent surprise (likes minus what the factorisation "
        "expected over the last 5 / 10 / 20 labelled events), by a logistic regression fitted on the validation "
        "events (lmrec.models.interest_blend); off: the Transformer alone. Ranking the catalogue reads the "
        "Transformer alone either way")


def label_tokens(labels: np.ndarray) -> np.ndarray:
    """Data labels (1 like, 0 dislike, -1 unlabelled) -> label tokens (1, 0, 2)."""
    return np.where(labels == UNLABELLED, UNKNOWN, labels).astype(np.int64)


class InterestNet(nn.Module):
    def __init__(self, cfg: InterestConfig, n_items: int) -> None:
        super().__init__()
        d = cfg.d_model
        if d % cfg.n_heads:
            raise ValueError(f"d_model {d} must be divisible by n_heads {cfg.n_heads}")
        self.cfg, self.bos = cfg, n_items + 1
        self.item_emb = nn.Embedding(n_items + 2, d, padding_idx=0)
        self.label_emb = nn.Embedding(3, d)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.emb_drop = Dropout(cfg.dropout)
        block_cfg = SASRecConfig(max_len=cfg.max_len, d_model=d, dropout=cfg.dropout, n_heads=cfg.n_heads,
                                 block="pre_ln")
        self.blocks = nn.ModuleList(Block(block_cfg) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(d)
        self.query = nn.Linear(d, d)
        self.key_value = nn.Linear(d, 2 * d)
        self.head = nn.Sequential(nn.Linear(3 * d + 2, d), nn.GELU(), Dropout(cfg.dropout), nn.Linear(d, 1))
        self.item_bias = nn.Embedding(n_items + 2, 1)
        self.bias = nn.Parameter(torch.zeros(1))
        # Only a training signal (the head's features learn the rating scale); "auto" here: a model
        # saved before the option existed, trained without it.
        self.rating = nn.Linear(3 * d + 2, 1) if cfg.rating_weight not in (0, "auto") else None
        for emb in (self.item_emb, self.label_emb, self.pos_emb):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.zeros_(self.item_bias.weight)

    def items(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., D) item embeddings on the scale of the inputs. The candidate side needs the same
        scale: at the initial std of 0.02 its queries were near zero, attention stayed uniform
        and the label pattern of a fixture took 25 epochs to appear instead of 10."""
        return self.item_emb(tokens) * math.sqrt(self.cfg.d_model)

    def encode(self, tokens: torch.Tensor, labels: torch.Tensor, causal: bool) -> torch.Tensor:
        """tokens, labels (B, L) left-padded -> (B, L, D); position t attends to the events (<= t
        when ``causal``)."""
        B, L = tokens.shape
        x = self.items(tokens) + self.label_emb(labels)
        x = self.emb_drop(x + self.pos_emb.weight[-L:])  # right-aligned positions: recency
        events = (tokens != 0)[:, None, :]  # (B, 1, L)
        allowed = events & torch.ones(L, L, dtype=torch.bool).tril() if causal else events
        mask = (allowed | torch.eye(L, dtype=torch.bool))[:, None]  # (B, 1, L, L); never an empty row (NaN)
        for block in self.blocks:
            x = block(x, mask)
        return self.ln(x)

    @staticmethod
    def like_stats(tokens: torch.Tensor, labels: torch.Tensor, causal: bool, C: int) -> torch.Tensor:
        """(B, C, 2): the logit of the user's smoothed like rate and log(1 + labelled events) over
        the history each candidate sees. Attention mixes what it attends to, so an explicit count
        gives the head the user's overall tendency (the user bias of a factorisation) directly."""
        known = ((labels != UNKNOWN) & (tokens != 0)).float()  # (B, L)
        likes = known * (labels == 1).float()
        if causal:
            n, k = known.cumsum(1), likes.cumsum(1)  # (B, L): up to and including position t
        else:
            n, k = known.sum(1, keepdim=True).expand(-1, C), likes.sum(1, keepdim=True).expand(-1, C)
        rate = (k + 1) / (n + 2)
        return torch.stack([torch.log(rate / (1 - rate)), torch.log1p(n) / 5], dim=-1)

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor, candidates: torch.Tensor,
                causal: bool = False) -> torch.Tensor:
        """History tokens/labels (B, L), candidate tokens (B, C) -> logits (B, C).

        ``causal`` (next-event training, C == L): candidate t is the event after history position t
        and sees positions <= t; otherwise every candidate sees the whole history.
        """
        return self.logits_and_ratings(tokens, labels, candidates, causal)[0]

    def logits_and_ratings(self, tokens: torch.Tensor, labels: torch.Tensor, candidates: torch.Tensor,
                           causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward``'s logits (B, C) and the standardised ratings predicted (B, C; None without the head)."""
        B, L = tokens.shape
        C, D, H = candidates.shape[1], self.cfg.d_model, self.cfg.n_heads
        hist = self.encode(tokens, labels, causal)  # (B, L, D)
        cand = self.items(candidates)  # (B, C, D), on the scale of the history inputs
        q = self.query(cand).view(B, C, H, D // H).transpose(1, 2)  # (B, H, C, hd)
        k, v = self.key_value(hist).view(B, L, 2, H, D // H).permute(2, 0, 3, 1, 4)  # (B, H, L, hd) each
        keys = (tokens != 0)[:, None, None, :]  # (B, 1, 1, L)
        if causal:
            # Query t always sees key t, so padded rows are never empty (no NaN); they are not trained.
            mask = (keys & torch.ones(C, L, dtype=torch.bool).tril()) | torch.eye(C, L, dtype=torch.bool)
        else:
            mask = keys
        with torch.autocast("cpu", enabled=False):
            att = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)  # (B, H, C, hd)
        att = att.transpose(1, 2).reshape(B, C, D)
        stats = self.like_stats(tokens, labels, causal, C)  # (B, C, 2)
        features = torch.cat([att, cand, att * cand, stats], dim=-1)  # (B, C, 3D + 2)
        out = self.head(features).squeeze(-1)  # (B, C)
        ratings = self.rating(features).squeeze(-1) if self.rating is not None else None
        return out + self.item_bias(candidates).squeeze(-1) + self.bias, ratings


def history_windows(items: Sequences, labels: Sequences, max_len: int, bos: int,
                    values: Sequences | None = None) -> tuple[np.ndarray, ...]:
    """Training windows (W, max_len + 1) of tokens and label tokens (and ``values``, 0 at BOS),
    left-padded: each user's [BOS, events...] cut from the end into windows whose trained positions
    (all but the first token) cover every event exactly once."""
    tok_rows, lab_rows, val_rows = [], [], []
    for r in range(len(items)):
        if not len(items[r]):
            continue
        toks = np.concatenate([[bos], items[r] + 1])
        labs = np.concatenate([[UNKNOWN], label_tokens(labels[r])])
        vals = np.concatenate([[0.0], values[r]]) if values is not None else None
        for end in range(len(toks), 1, -max_len):
            start = max(0, end - max_len - 1)
            tok_rows.append(toks[start:end])
            lab_rows.append(labs[start:end])
            if vals is not None:
                val_rows.append(vals[start:end])
    out = (left_padded(tok_rows, max_len + 1, 0), left_padded(lab_rows, max_len + 1, UNKNOWN))
    if values is not None:
        out += (left_padded(val_rows, max_len + 1, 0.0, np.float32),)
    return out


def left_padded(rows: list[np.ndarray], width: int, fill: float, dtype=np.int64) -> np.ndarray:
    """(len(rows), width) array of the rows right-aligned, ``fill`` before them."""
    out = np.full((len(rows), width), fill, dtype=dtype)
    for j, row in enumerate(rows):
        out[j, width - len(row):] = row
    return out


class Interest(NeuralRecommender, InterestPredictor):
    """P(like) of an item given the user's labelled history; ranks the catalogue by it."""

    name = "interest"
    Config = InterestConfig
    task = "interest"
    _ratings: np.ndarray | None = None  # set by setup: the standardised ratings the auxiliary loss predicts
    blend: InterestBlend | None = None  # set by fit on validation events (config.blend), else the Transformer alone
    _blending = False  # during fit: whether a blend follows the Transformer's training (its budget is shared)

    def build_net(self, n_items: int) -> InterestNet:
        return InterestNet(self.config, n_items)

    def auto_values(self, p: DataProfile) -> dict[str, Any]:
        return super().auto_values(p) | {"rating_weight": RATING_WEIGHT if self._ratings is not None else 0.0}

    def setup(self, train: Interactions, budget_s: float | None = None) -> None:
        if train.label is None or not (train.label >= 0).any():
            raise ConfigError("model 'interest' needs like / dislike labels on the training events (data.like_threshold "
                              "or data.event_labels)")
        self._ratings = rating_targets(train)
        self.resolve_auto(train)
        self._seed = int(torch.initial_seed() % (2**31))
        self.n_items = train.n_items
        self.net = self.build_net(train.n_items)
        rated = self._ratings is not None and self.config.rating_weight > 0
        windows = history_windows(train.sequences(), train.label_sequences(), self.config.max_len, self.net.bos,
                                  Sequences.from_sorted_groups(train.user, self._ratings, train.n_users) if rated else None)
        lengths = (windows[0] != 0).sum(axis=1)
        batch_size = self.training.batch_size

        def batches(epoch: int) -> list[tuple[torch.Tensor, ...]]:
            rng = np.random.default_rng(epoch + 1_000_003 * self._seed)
            order = np.lexsort((rng.random(len(lengths)), lengths))
            chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
            out = []
            for j in rng.permutation(len(chunks)):
                width = int(lengths[chunks[j]].max())
                out.append(tuple(torch.from_numpy(w[chunks[j], -width:]) for w in windows))
            return out

        self._batches = batches

    def _loss(self, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        tokens, labels = batch[:2]  # (B, L + 1) each (and the standardised ratings with the rating loss)
        inputs, in_labels = tokens[:, :-1], labels[:, :-1]
        candidates, targets = tokens[:, 1:], labels[:, 1:]  # (B, L): the event after each input position
        if self.config.label_dropout:
            hide = torch.rand(in_labels.shape) < self.config.label_dropout
            in_labels = in_labels.masked_fill(hide, UNKNOWN)
        logits, ratings = self.net.logits_and_ratings(inputs, in_labels, candidates, causal=True)  # (B, L) each
        trained = (inputs != 0) & (targets != UNKNOWN)
        loss = F.binary_cross_entropy_with_logits(logits[trained].float(), targets[trained].float())
        if len(batch) > 2:
            loss = loss + self.config.rating_weight * F.mse_loss(ratings[trained].float(), batch[2][:, 1:][trained])
        return StepOutput(loss, {"inputs": inputs, "net": self.net})

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        started = time.perf_counter()
        self.blend = None
        self._blending = self.config.blend == "validation" and isinstance(valid, InterestValidator)
        super().fit(train, valid, time_budget_s=time_budget_s)
        if self._blending:
            s = valid.set
            left = super()._fit_budget(time_budget_s) - (time.perf_counter() - started)
            self.blend = InterestBlend.fit(self._transformer_logits(s.histories, s.history_labels, s.candidates),
                                           train, s, self._seed, max_seconds=max(0.0, left))
        return self

    def _fit_budget(self, time_budget_s: float | None) -> float:
        """The Transformer's share: the blend's factorisation gets the rest (BLEND_SHARE at least)."""
        whole = super()._fit_budget(time_budget_s)
        return whole * (1 - BLEND_SHARE) if self._blending else whole

    def refit(self, data: Interactions, *, time_budget_s: float | None = None) -> Self:
        model = super().refit(data, time_budget_s=time_budget_s)
        model.blend = self.blend.refit(data) if self.blend is not None else None
        return model

    def fit_notes(self) -> list[str]:
        return [self.blend.describe()] if self.blend is not None else []

    def interest_choices(self) -> dict[str, float | str]:
        return self.blend.choices() if self.blend is not None else {}

    def _state(self) -> dict[str, np.ndarray]:
        return super()._state() | (self.blend.state() if self.blend is not None else {})

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.blend = InterestBlend.from_state(state)
        super()._load_state({k: v for k, v in state.items() if not k.startswith(PREFIX)})

    # --- inference ---------------------------------------------------------------------------
    def _history_tensors(self, histories: Sequences, labels: Sequences | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) tokens and label tokens: the last max_len events, after BOS when the history fits."""
        L = self.config.max_len
        toks = [np.concatenate([[self.net.bos], histories[r] + 1])[-L:] for r in range(len(histories))]
        labs = [np.concatenate([[UNKNOWN], label_tokens(labels[r]) if labels is not None
                                else np.full(len(histories[r]), UNKNOWN)])[-L:] for r in range(len(histories))]
        width = max(len(t) for t in toks)
        return torch.from_numpy(left_padded(toks, width, 0)), torch.from_numpy(left_padded(labs, width, UNKNOWN))

    def _logits(self, histories: Sequences, labels: Sequences | None, candidates: torch.Tensor) -> torch.Tensor:
        """candidates (B, C) tokens -> (B, C) logits, in row chunks that bound the attention's memory."""
        rows = max(1, int(MAX_ATTENTION_ELEMENTS // (candidates.shape[1] * self.config.max_len * self.config.n_heads)))
        out = torch.empty(candidates.shape, dtype=torch.float32)
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(histories), rows):
                sl = slice(start, start + rows)
                tokens, labs = self._history_tensors(histories.take(sl), None if labels is None else labels.take(sl))
                out[sl] = self.net(tokens, labs, candidates[sl]).float()
        return out

    def predict_interest(self, histories: Sequences, history_labels: Sequences, candidates: Sequences,
                         users: np.ndarray | None = None) -> np.ndarray:
        logits = self._transformer_logits(histories, history_labels, candidates)
        if self.blend is not None:
            logits = self.blend.logits(logits, histories, history_labels, candidates, users)
        return expit(logits)

    def _transformer_logits(self, histories: Sequences, history_labels: Sequences, candidates: Sequences) -> np.ndarray:
        """(N,) the Transformer's logits, aligned with ``candidates.values``."""
        self._check_fitted()
        cands = torch.from_numpy(candidates.to_padded(max(1, int(candidates.lengths().max(initial=0))), pad=-1) + 1)
        logits = self._logits(histories, history_labels, cands)  # (B, Cmax), left-padded like the candidates
        lengths = candidates.lengths()
        keep = np.arange(cands.shape[1])[None, :] >= cands.shape[1] - lengths[:, None]
        return logits.numpy()[keep].astype(np.float64)

    def _item_vectors(self) -> torch.Tensor:
        return self.net.item_emb.weight[1:-1].detach()  # (n_items, D): padding and BOS rows left out

    def _score(self, histories: Sequences) -> torch.Tensor:
        every = torch.arange(1, self.n_items + 1).expand(len(histories), -1)  # (B, n_items)
        return self._logits(histories, None, every)
