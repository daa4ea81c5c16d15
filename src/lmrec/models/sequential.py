"""Shared machinery of neural next-item models: the automatic architecture rules, the three
losses, validation-driven training through :mod:`lmrec.training` (loop, batches, hooks), the
refit that follows the evaluated run's learning-rate path, scoring and (de)serialisation.

A subclass supplies a network with three methods: ``item_table() -> (n_items + 1, D)``, the
input representation of every token; ``forward(tokens (B, L), table, last_only) -> hidden
(B, L, D)``, where position t may only depend on tokens <= t (``last_only``: the last position
only, (B, 1, D), as inference needs); and ``item_weights(table) -> (n_items, D)``,
the output item vectors. The table is computed once per training step or scoring call and
handed to both sides, so a fused item representation (and its random ID dropout) is the same
on the input and the output side. Token 0 is padding; catalogue item i is token i + 1;
sequences are left-padded so the last position always holds the most recent event.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any, Self

import numpy as np
import torch
from pydantic import Field
from torch import nn

from lmrec.data.profile import DataProfile
from lmrec.data.sequences import Interactions, Sequences
from lmrec.errors import ConfigError
from lmrec.models.base import Accelerated, EdgeExportable, ModelConfig, Recommender, ValidationSet, Validator, VectorScorer
from lmrec.models.edge import EdgeParts, LastState
from lmrec.training import losses
from lmrec.training.auto import resolve, resolve_training
from lmrec.training.batching import LengthBucketedBatches
from lmrec.training.config import Auto, Positive
from lmrec.training.device import choose, torch_device
from lmrec.training.hooks import DataAugmentation, StepOutput, TrainingHook
from lmrec.training.trainer import LRPath, Trainer

DROPOUT = {"dense": 0.1, "medium": 0.2, "sparse": 0.5}
INFERENCE_CHUNK = 256  # histories encoded together at inference
# A refit from the evaluated weights replays this share of the epochs up to the best one: enough
# for the events the evaluated fit never saw (validation and test targets), far less than a fit.
WARM_REFIT_SHARE = 0.1


class SequentialConfig(ModelConfig):
    max_len: Positive | Auto = Field(
        "auto", description="most recent events the model reads (auto: the 99th percentile of history length, "
        "rounded up to 10, within 20..200)")
    d_model: Annotated[int, Field(ge=8)] | Auto = Field("auto", description="width (auto: 64)")
    dropout: Annotated[float, Field(ge=0, lt=1)] | Auto = Field(
        "auto", description="dropout (auto: 0.1 when the median item has >= 100 events, 0.5 when the median user and "
        "item both have < 20, else 0.2)")


class NeuralRecommender(Recommender):
    """Base of the neural models: automatic settings from the data's profile, training through
    :class:`lmrec.training.trainer.Trainer` with validation-driven early stopping, the refit that
    follows the evaluated run's learning-rate path, and (de)serialisation of the network.

    A subclass builds its network (``build_net``), its epoch batches (``setup`` sets ``_batches``,
    a function of the epoch) and its loss (``_loss``, a function of one batch)."""

    def __init__(self, config=None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self.net: nn.Module | None = None
        self.hooks: list[TrainingHook] = []  # extra losses and gradient hooks (privacy, distributed, ...)
        self.augmentation: DataAugmentation | None = None  # what the fit trains on besides the data (lmrec.augment)
        self.augmentation_summary: dict[str, Any] = {}
        self._augmentation_hooks: list[TrainingHook] = []
        self._follow: LRPath | None = None  # set on a refit: the evaluated run's learning-rate path
        # Items the training softmax ranks over; None: the whole catalogue. Content models leave
        # out items without training events: as never-positive negatives they would only be
        # taught to score low, the opposite of what their content vectors are there for.
        self._softmax_items: torch.Tensor | None = None
        self._table: tuple[tuple, torch.Tensor] | None = None  # (weights fingerprint, inference table)
        self._watched: tuple[nn.Module, list[torch.Tensor]] | None = None  # (network, its weights)
        self._start: dict[str, np.ndarray] | None = None  # set on a fine-tune: the weights training starts from
        self._batches: LengthBucketedBatches | None = None
        self.device = "cpu"  # where the last fit's steps ran ("cpu" or "cuda"; set by fit)

    def build_net(self, n_items: int) -> nn.Module:
        raise NotImplementedError

    def auto_values(self, p: DataProfile) -> dict[str, Any]:
        """Architecture rules (docs/defaults.md): what the frozen configs of the benchmarks chose."""
        return {"max_len": int(min(200, max(20, 10 * math.ceil(p.history_p99 / 10)))), "d_model": 64,
                "dropout": DROPOUT[p.regime]}

    def resolve_auto(self, train: Interactions) -> None:
        """Replace every "auto" of the model and training configs by the rule for ``train``'s profile
        (a no-op once resolved) and choose the device of the fit; ``auto_choices`` records what was chosen."""
        self.device = choose(self.runtime.device, self.cpu_only_parts())
        profile = DataProfile.of(train, item_text=self.uses_item_content)
        self.config, model_choices = resolve(self.config, self.auto_values(profile), "model")
        self.training, training_choices = resolve_training(self.training, profile, self.device)
        self.auto_choices |= model_choices | training_choices

    # --- training ---------------------------------------------------------------------------
    def setup(self, train: Interactions, budget_s: float | None = None) -> None:
        """What ``fit`` does before the first step: resolve "auto", build the network and ``_batches``."""
        raise NotImplementedError

    def _loss(self, batch: Any) -> StepOutput:
        raise NotImplementedError

    def _validator(self, valid: Validator | None):
        if valid is None:
            return None
        n = self.training.valid_users
        if n is not None and isinstance(valid, ValidationSet):
            valid = valid.subsample(n)
        return lambda: valid(self)

    def _fit_budget(self, time_budget_s: float | None) -> float:
        """Seconds for the fit: the caller's, else the (resolved) training config's whole budget."""
        return time_budget_s if time_budget_s is not None else self.training.time_budget * 60

    def cpu_only_parts(self) -> list[str]:
        """What in this fit cannot train on a GPU (``lmrec.training.device``)."""
        parts = [] if isinstance(self, Accelerated) else [f"model {self.name!r}"]
        parts += ["data augmentation"] if self.augmentation else []
        return parts + [f"the {h.name} training hook" for h in self.hooks if not h.accelerated]

    def fit(self, train: Interactions, valid: Validator | None = None, *, time_budget_s: float | None = None) -> Self:
        started = time.perf_counter()
        self.setup(train, time_budget_s)
        if self._start is not None:  # parameters only: buffers (e.g. items' event shares) describe this fit's data
            with torch.no_grad():
                for name, param in self.net.named_parameters():
                    param.copy_(torch.from_numpy(self._start[name]))
        left = max(1.0, self._fit_budget(time_budget_s) - (time.perf_counter() - started))  # less augmentation's share
        device = torch_device(self.device)
        softmax_items = self._softmax_items
        self.net.to(device)  # before the trainer: hooks (DDP) wrap the module where it trains
        if softmax_items is not None:
            self._softmax_items = softmax_items.to(device)
        try:
            trainer = Trainer(self.net, self._batches, self._loss, self.training, self._validator(valid),
                              runtime=self.runtime, time_budget_s=left, follow=self._follow,
                              hooks=[*self.hooks, *self._augmentation_hooks], device=device)
            trainer.load_checkpoint()
            self.train_state = trainer.fit()
        finally:  # everything after training (evaluation, saving, serving) runs the CPU path
            self.net.to("cpu")
            self._softmax_items, self._table, self._watched = softmax_items, None, None
        self.train_state.events = len(train)
        return self

    def refit(self, data: Interactions, *, time_budget_s: float | None = None) -> Self:
        """Train the served model on ``data`` (no validation, no early stopping), each step at the
        learning rate the evaluated run had at the same point of its epochs. ``training.refit_start``
        "evaluated": from this model's weights, for the last WARM_REFIT_SHARE of the epochs up to the
        best one (their part of the path); "scratch": fresh weights, the whole path up to the best epoch.

        When ``time_budget_s`` cannot hold those epochs (judged from the evaluated run's epoch times,
        scaled by the number of events), the same path is compressed into the epochs that fit, so
        the schedule still anneals to its end instead of being cut off."""
        st = self.train_state
        best = max(1, st.best_epoch if st else 1)
        warm = self.refit_share() < 1 and self.net is not None
        skipped = best - max(1, math.ceil(WARM_REFIT_SHARE * best)) if warm else 0  # epochs not replayed
        path = st.lr_path(best) if st and st.lrs else None
        if path is not None:
            path = LRPath(path.lrs[int(skipped * path.steps_per_epoch):], path.steps_per_epoch)
        epochs = best - skipped
        if path is not None and time_budget_s is not None and st.history:
            share = self.augmentation.budget_share() if self.augmentation else 0.0
            per_epoch = float(np.median([h["seconds"] for h in st.history])) * len(data) / max(1, st.events)
            fitting = max(1, min(epochs, int(time_budget_s * (1 - share) / max(per_epoch, 1e-9))))
            path, epochs = LRPath(path.lrs, path.steps_per_epoch * epochs / fitting), fitting
        model = self._spawn(self.refit_config(), self.training.model_copy(update={"epochs": epochs, "patience": None}))
        model.runtime = self.runtime.model_copy(update={"checkpoint_dir": None})
        model._follow = path
        if warm:
            model._start = self._state()
        return model.fit(data, time_budget_s=time_budget_s)

    def refit_share(self) -> float:
        # "auto" here: a model loaded from a run written before the setting existed (auto's rule: evaluated).
        return 1.0 if self.training.refit_start == "scratch" else WARM_REFIT_SHARE

    def fine_tune(self, data: Interactions, valid: Validator | None, *, epochs: int, hooks: list[TrainingHook],
                  lr_scale: float = 0.1, time_budget_s: float | None = None) -> Self:
        """A new model trained on from this one's weights (e.g. after pruning, with the hook that
        keeps pruned weights at zero) for up to ``epochs`` epochs at ``lr_scale`` of the peak learning
        rate, annealed by cosine; with ``valid``, the best epoch is kept (early stopping)."""
        model = self._spawn(self.refit_config(), self.training.model_copy(update={
            "epochs": epochs, "lr": self.training.lr * lr_scale, "warmup_steps": 0, "lr_schedule": "cosine",
            "patience": None if valid is None else self.training.patience}))
        model.runtime = self.runtime.model_copy(update={"checkpoint_dir": None})
        model.hooks = [*self.hooks, *hooks]
        model.augmentation = None  # fine-tuning is on the data as it is
        model._start = self._state()
        return model.fit(data, valid, time_budget_s=time_budget_s)

    def _spawn(self, config, training) -> Self:
        model = super()._spawn(config, training)
        model.hooks, model.augmentation = self.hooks, self.augmentation
        return model

    def refit_config(self) -> ModelConfig:
        """The model config of the refit: the evaluated one (subclasses fix what fit chose on validation)."""
        return self.config

    def _state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.net.state_dict().items()}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.net = self.build_net(self.n_items)
        self.net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        self.net.eval()


class SequentialRecommender(NeuralRecommender, VectorScorer, EdgeExportable, Accelerated):
    """Base of the neural next-item models (the network contract is in the module docstring)."""

    Config = SequentialConfig
    trains_on_sequences = True

    def _prepare(self, train: Interactions) -> None:
        """Called by ``fit`` once the config is resolved, before the network is built."""

    # --- training ---------------------------------------------------------------------------
    def _loss(self, batch: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> StepOutput:
        tcfg = self.training
        window, labels = batch if isinstance(batch, tuple) else (batch, None)  # (B, L + 1) each
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
        if tcfg.loss == "ce":
            loss = losses.chunked_softmax_ce(h, weights, t)
        elif tcfg.loss == "sampled":
            neg = torch.randint(0, len(weights), (tcfg.n_negatives,), device=h.device)  # (M,) shared by the batch
            loss = losses.sampled_softmax_ce((h * weights[t]).sum(-1), h @ weights[neg].T, neg[None, :] == t[:, None])
        else:
            neg = torch.randint(0, len(weights), (len(t),), device=h.device)  # one uniform negative per position
            loss = losses.bce_one_negative((h * weights[t]).sum(-1), (h * weights[neg]).sum(-1))
        if tcfg.loss_norm == "epoch":  # mean -> sum / (mean positions per batch)
            loss = loss * (len(t) / self._batches.positions_per_batch)
        return StepOutput(loss, {"inputs": inputs, "targets": targets, "hidden": hidden, "table": table,
                                 "net": self.net} | ({} if labels is None else {"labels": labels[:, 1:]}))

    def _extra_score_blocks(self, inputs: torch.Tensor, valid: torch.Tensor, h: torch.Tensor,
                            weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores that are more than the network's inner product add blocks to both sides here,
        so that training sees the same score as inference. inputs (B, L), valid (B, L) -> the
        trained positions' h (N, D') and the item vectors (n_items, D')."""
        return h, weights

    def setup(self, train: Interactions, budget_s: float | None = None) -> None:
        """What ``fit`` does before the first step: resolve "auto", prepare the model's data-dependent
        state, run the data augmentation (which may spend its share of the fit's budget), build the
        network and the batches (also what step-timing benchmarks call)."""
        self.resolve_auto(train)
        self._seed = int(torch.initial_seed() % (2**31))
        self.n_items = train.n_items
        self._prepare(train)
        sequences = train.sequences()
        if self.augmentation:
            prepared = self.augmentation.prepare(self, train, self._fit_budget(budget_s))
            sequences, self._augmentation_hooks, self.augmentation_summary = (prepared.sequences, prepared.hooks,
                                                                              prepared.summary)
        labels = None
        if any(h.needs_labels for h in self.hooks):
            if self.augmentation:
                raise ConfigError("a training head that reads like / dislike labels cannot be combined with data "
                                  "augmentation (augmented sequences have no labels)")
            if train.label is None:
                raise ConfigError("a training head reads like / dislike labels, but the events have none: set "
                                  "data.like_threshold or data.event_labels")
            labels = train.label_sequences()
        self.net = self.build_net(train.n_items)
        self._batches = LengthBucketedBatches(sequences, max_len=self.config.max_len,
                                              batch_size=self.training.batch_size,
                                              random_window=self.training.window == "random", seed=self._seed,
                                              labels=labels)

    # --- inference ---------------------------------------------------------------------------
    def _inference_table(self) -> torch.Tensor:
        """``item_table()`` in eval mode, kept until the weights change (a fused table runs an MLP
        over the whole catalogue: too much to redo for every served request).

        The fingerprint is the version counter of every parameter and buffer, which torch bumps on
        each in-place change (optimizer steps, load_state_dict), so no caller has to invalidate it.
        The list of those tensors is kept per network object (walking the modules for it cost a
        served request 0.1 ms): weights only change in place or with a new network.
        """
        if self._watched is None or self._watched[0] is not self.net:
            self._watched = (self.net, [*self.net.parameters(), *self.net.buffers()])
        key = tuple(t._version for t in self._watched[1])
        if self._table is None or self._table[0] != key:
            self.net.eval()
            with torch.inference_mode():
                self._table = (key, self.net.item_table())  # table (n_items + 1, D)
        return self._table[1]

    def query_vectors(self, histories: Sequences) -> torch.Tensor:
        """(B, D) user states; scores are their inner products with ``output_item_vectors()``."""
        self._check_fitted()
        table = self._inference_table()
        tokens = histories.to_padded(self.config.max_len, pad=-1) + 1  # (B, L)
        lengths = np.minimum(histories.lengths(), self.config.max_len)
        # Histories of similar length together, each chunk cut to its longest: the cost follows the
        # real lengths, not B * max_len (Beauty: 9 events on average of 50).
        order = np.argsort(lengths, kind="stable")
        out = torch.empty(len(histories), table.shape[1])  # (B, D)
        if self.net.training:  # the whole network switches together; eval() walks every module
            self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(order), INFERENCE_CHUNK):
                rows = order[start : start + INFERENCE_CHUNK]
                longest = max(1, int(lengths[rows].max()))
                chunk = torch.from_numpy(tokens[rows, -longest:])  # (C, longest)
                out[torch.from_numpy(rows)] = self.net(chunk, table, last_only=True)[:, -1].float()  # after the latest event
        return out

    def output_item_vectors(self) -> torch.Tensor:
        """(n_items, D) item vectors of the output layer (what nearest-neighbour retrieval indexes)."""
        self._check_fitted()
        with torch.inference_mode():
            return self.net.item_weights(self._inference_table()).detach()

    def _score(self, histories: Sequences) -> torch.Tensor:
        return self.query_vectors(histories) @ self.output_item_vectors().T  # (B, n_items)

    def edge_parts(self) -> EdgeParts:
        self.net.eval()
        return EdgeParts(LastState(self.net), {"table": self._inference_table().detach().numpy().copy()},
                         self.output_item_vectors().numpy().copy(), self.config.max_len)

    def _item_vectors(self) -> torch.Tensor:
        return self.output_item_vectors()
