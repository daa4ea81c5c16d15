"""Shared machinery of neural next-item models: training windows, length-bucketed batches,
the three losses, validation-driven training, scoring and (de)serialisation.

A subclass supplies a network with three methods: ``item_table() -> (n_items + 1, D)``, the
input representation of every token; ``forward(tokens (B, L), table) -> hidden (B, L, D)``,
where position t may only depend on tokens <= t; and ``item_weights(table) -> (n_items, D)``,
the output item vectors. The table is computed once per training step or scoring call and
handed to both sides, so a fused item representation (and its random ID dropout) is the same
on the input and the output side. Token 0 is padding; catalogue item i is token i + 1;
sequences are left-padded so the last position always holds the most recent event.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
import torch
from pydantic import Field
from torch import nn

from lmrec.data.sequences import Interactions, Sequences
from lmrec.models.base import ModelConfig, Recommender, Validator
from lmrec.training import losses
from lmrec.training.trainer import Trainer, TrainerConfig


class SequentialConfig(ModelConfig):
    max_len: int = Field(200, ge=1, description="most recent events the model reads")
    d_model: int = Field(64, ge=8)
    dropout: float = Field(0.2, ge=0, lt=1)
    loss: Literal["ce", "sampled", "bce"] = Field(
        "ce", description="ce: full softmax cross-entropy; sampled: softmax over n_negatives shared uniform "
        "negatives; bce: one negative per position (original SASRec)")
    n_negatives: int = Field(256, ge=1, description="negatives per batch for loss=sampled")
    epochs: int = Field(200, ge=1)
    window: Literal["last", "random"] = Field(
        "last", description="training window of users longer than max_len: their last events, or a window "
        "ending at a random point each epoch (trains on older events too)")
    batch_size: int = Field(128, ge=1)
    loss_norm: Literal["batch", "epoch"] = Field(
        "epoch", description="epoch: the batch's summed loss over the epoch's mean positions per batch, so every "
        "training position weighs the same (as in randomly mixed batches; +0.018 test NDCG@10 on ML-1M, "
        "docs/benchmarks.md); batch: each step's loss is the mean over its positions, so in length-bucketed "
        "batches a short history's positions weigh more")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: decay to 0 by the last epoch, or by max_train_minutes when that comes first")
    warmup_steps: int = Field(0, ge=0, description="optimizer steps of linear learning-rate warm-up")
    patience: int | None = Field(10, ge=1, description="validation checks without gain before stopping")
    eval_every: int = Field(1, ge=1, description="epochs between validation checks")
    bf16: bool | Literal["auto"] = Field(
        "auto", description="bfloat16 autocast for training matmuls; auto: on when the CPU has native bf16")
    max_train_minutes: float | None = Field(None, gt=0, description="stop training after this wall time")
    valid_users: int | None = Field(None, ge=1, description="validate on a fixed random subset of users")
    checkpoint_dir: str | None = Field(None, description="save a resumable checkpoint here after every epoch")
    progress: bool = True


def native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX); emulated bf16 is slower."""
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def training_windows(seqs: Sequences, max_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """(U, max_len + 1) token windows of the users with >= 2 events, left-padded with 0.

    Position t of ``window[:, :-1]`` is trained to predict ``window[:, t + 1]``. By default the
    window holds each user's last max_len + 1 events; with ``rng`` a user with more events gets a
    window ending at a random point, so over the epochs the older events are trained on too.
    """
    seqs = seqs.take(np.flatnonzero(seqs.lengths() >= 2))
    if rng is not None:
        lengths = seqs.lengths()
        long = lengths > max_len + 1
        ends = lengths.copy()
        ends[long] = rng.integers(max_len + 1, lengths[long] + 1)
        seqs = seqs.prefixes(ends)
    return seqs.to_padded(max_len + 1, pad=-1) + 1


class SequentialRecommender(Recommender):
    Config = SequentialConfig

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.net: nn.Module | None = None
        self.train_state = None
        self._seed = 0
        # Items the training softmax ranks over; None: the whole catalogue. Content models leave
        # out items without training events: as never-positive negatives they would only be
        # taught to score low, the opposite of what their content vectors are there for.
        self._softmax_items: torch.Tensor | None = None
        self._table: tuple[tuple, torch.Tensor] | None = None  # (weights fingerprint, inference table)
        self._positions_per_batch = 1.0  # set by _batches each epoch, for loss_norm: epoch

    def build_net(self, n_items: int) -> nn.Module:
        raise NotImplementedError

    # --- training ---------------------------------------------------------------------------
    def _batches(self, seqs: Sequences, epoch: int):
        """Length-bucketed batches: similar lengths together, so little time goes into padding."""
        cfg = self.config
        rng = np.random.default_rng(epoch + 1_000_003 * self._seed)
        windows = training_windows(seqs, cfg.max_len, rng if cfg.window == "random" else None)
        lengths = (windows != 0).sum(axis=1)
        order = np.lexsort((rng.random(len(windows)), lengths))
        chunks = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        self._positions_per_batch = float((lengths - 1).sum()) / max(len(chunks), 1)  # targets per batch, on average
        for j in rng.permutation(len(chunks)):
            w = windows[chunks[j]]
            w = w[:, -int((w != 0).sum(axis=1).max()) :]  # drop columns that are padding in every row
            yield torch.from_numpy(w)

    def _loss(self, window: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        inputs, targets = window[:, :-1], window[:, 1:]  # (B, L)
        table = self.net.item_table()  # (n_items + 1, D), once per step
        hidden = self.net(inputs, table)  # (B, L, D)
        valid = (targets != 0) & (inputs != 0)
        h, t = hidden[valid], targets[valid] - 1  # (N, D), (N,) item indices
        weights = self.net.item_weights(table)  # (n_items, D)
        h, weights = self._extra_score_blocks(inputs, valid, h, weights)  # (N, D'), (n_items, D')
        if self._softmax_items is not None:
            weights = weights[self._softmax_items]  # (n_softmax, D)
            t = torch.searchsorted(self._softmax_items, t)  # targets are always among them
        if cfg.loss == "ce":
            loss = losses.chunked_softmax_ce(h, weights, t)
        elif cfg.loss == "sampled":
            neg = torch.randint(0, len(weights), (cfg.n_negatives,))  # (M,) shared by the batch
            loss = losses.sampled_softmax_ce((h * weights[t]).sum(-1), h @ weights[neg].T, neg[None, :] == t[:, None])
        else:
            neg = torch.randint(0, len(weights), (len(t),))  # one uniform negative per position
            loss = losses.bce_one_negative((h * weights[t]).sum(-1), (h * weights[neg]).sum(-1))
        if cfg.loss_norm == "epoch":  # mean -> sum / (mean positions per batch)
            loss = loss * (len(t) / self._positions_per_batch)
        return loss

    def _extra_score_blocks(self, inputs: torch.Tensor, valid: torch.Tensor, h: torch.Tensor,
                            weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores that are more than the network's inner product add blocks to both sides here,
        so that training sees the same score as inference. inputs (B, L), valid (B, L) -> the
        trained positions' h (N, D') and the item vectors (n_items, D')."""
        return h, weights

    def _validator(self, valid: Validator | None):
        if valid is None:
            return None
        if self.config.valid_users is not None and hasattr(valid, "subsample"):
            valid = valid.subsample(self.config.valid_users)
        return lambda: valid(self)

    def fit(self, train: Interactions, valid: Validator | None = None) -> Self:
        cfg = self.config
        self._seed = int(torch.initial_seed() % (2**31))
        self.n_items = train.n_items
        self.net = self.build_net(train.n_items)
        seqs = train.sequences()
        tcfg = TrainerConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, patience=cfg.patience,
                             eval_every=cfg.eval_every, bf16=native_bf16() if cfg.bf16 == "auto" else cfg.bf16,
                             progress=cfg.progress, schedule=cfg.lr_schedule, warmup_steps=cfg.warmup_steps,
                             time_budget_s=cfg.max_train_minutes * 60 if cfg.max_train_minutes else None)
        trainer = Trainer(self.net, lambda epoch: self._batches(seqs, epoch), self._loss, tcfg,
                          validate=self._validator(valid), checkpoint_dir=cfg.checkpoint_dir)
        trainer.load_checkpoint()
        self.train_state = trainer.fit()
        return self

    def refit_config(self) -> SequentialConfig:
        best = self.train_state.best_epoch if self.train_state else self.config.epochs
        return self.config.model_copy(update={"epochs": max(1, best), "patience": None, "checkpoint_dir": None,
                                             "max_train_minutes": None})

    # --- inference ---------------------------------------------------------------------------
    def _inference_table(self) -> torch.Tensor:
        """``item_table()`` in eval mode, kept until the weights change (a fused table runs an MLP
        over the whole catalogue: too much to redo for every served request).

        The fingerprint is the version counter of every parameter and buffer, which torch bumps on
        each in-place change (optimizer steps, load_state_dict), so no caller has to invalidate it.
        """
        key = (id(self.net), *(t._version for t in (*self.net.parameters(), *self.net.buffers())))
        if self._table is None or self._table[0] != key:
            self.net.eval()
            with torch.inference_mode():
                self._table = (key, self.net.item_table())  # table (n_items + 1, D)
        return self._table[1]

    def query_vectors(self, histories: Sequences) -> torch.Tensor:
        """(B, D) user states; scores are their inner products with ``output_item_vectors()``."""
        self._check_fitted()
        table = self._inference_table()
        tokens = torch.from_numpy(histories.to_padded(self.config.max_len, pad=-1) + 1)  # (B, L)
        if len(histories):
            longest = int(min(self.config.max_len, max(1, histories.lengths().max())))
            tokens = tokens[:, -longest:]
        self.net.eval()
        with torch.inference_mode():
            return self.net(tokens, table)[:, -1]  # (B, D): the state after the most recent event

    def output_item_vectors(self) -> torch.Tensor:
        """(n_items, D) item vectors of the output layer (what nearest-neighbour retrieval indexes)."""
        self._check_fitted()
        with torch.inference_mode():
            return self.net.item_weights(self._inference_table()).detach()

    def _score(self, histories: Sequences) -> torch.Tensor:
        return self.query_vectors(histories) @ self.output_item_vectors().T  # (B, n_items)

    def _item_vectors(self) -> torch.Tensor:
        return self.output_item_vectors()

    def _state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.net.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.net = self.build_net(self.n_items)
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.net.eval()
