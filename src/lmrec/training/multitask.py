"""Multi-task training of the next-item models: auxiliary heads on the same user states.

Beside the next-item loss, at every trained position (the state after events <= t, predicting
event t + 1):

* ``like``: will the user like event t + 1's item? A small MLP over [state, item vector] and
  binary cross-entropy on the labelled events (needs like / dislike labels).
* ``category``: which categories does the next item have (ML genres, Beauty attributes)? A linear
  head and a cross-entropy against the item's categories as a distribution.

Task weights are fixed (``like_weight``, ``category_weight``; the next-item loss weighs 1) or
learned by uncertainty weighting (Kendall, Gal & Cipolla 2018): every task's loss L_k becomes
exp(-s_k) L_k + s_k with a learned log-variance s_k, the next-item task's included.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from lmrec.errors import ConfigError
from lmrec.training.hooks import StepOutput, TrainingHook


class MultiTaskConfig(BaseModel):
    """Auxiliary training tasks of the sequence models (off by default)."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[Literal["like", "category"]] = Field(
        default_factory=list, description="auxiliary heads: like (needs like / dislike labels), category (needs "
        "item categories)")
    weights: Literal["fixed", "uncertainty"] = Field(
        "fixed", description="fixed: the *_weight values (next-item loss: 1); uncertainty: learned per task")
    like_weight: float = Field(0.5, ge=0)
    category_weight: float = Field(0.5, ge=0)
    category_column: str = Field(
        "genres", description="items-file column of '|'-separated categories (e.g. MovieLens genres)")
    category_vectors: str | None = Field(
        None, description="instead of the column: a per-item multi-hot file (.npy + .ids.txt or .parquet, keyed by "
        "item id), e.g. Beauty's attributes from benchmarks/beauty_attributes.py")

    @model_validator(mode="after")
    def _distinct(self) -> MultiTaskConfig:
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("tasks must not repeat")
        return self


def item_categories(item_info: pl.DataFrame | None, config: MultiTaskConfig) -> np.ndarray:
    """(n_items, K) multi-hot categories of the catalogue items, in index order."""
    if config.category_vectors:
        from lmrec.content.vectors import load_item_vectors

        if item_info is None:
            raise ConfigError("multitask.category_vectors needs the catalogue's item ids (an items file)")
        return (load_item_vectors(config.category_vectors, item_info["item"].to_list()) > 0).astype(np.float32)
    column = config.category_column
    if item_info is None or column not in item_info.columns:
        have = [] if item_info is None else item_info.columns[1:]
        raise ConfigError(f"multitask task 'category' needs the items file's {column!r} column (it has {have}); set "
                          "multitask.category_column or multitask.category_vectors")
    lists = [[] if v is None else [c.strip() for c in str(v).split("|") if c.strip()] for v in item_info[column]]
    vocab = {c: j for j, c in enumerate(sorted({c for row in lists for c in row}))}
    out = np.zeros((len(lists), len(vocab)), dtype=np.float32)
    for i, row in enumerate(lists):
        out[i, [vocab[c] for c in row]] = 1.0
    return out


class MultiTask(TrainingHook, nn.Module):
    """The auxiliary heads as a training hook: its parameters join the optimizer when the trainer
    is built; each step adds the heads' losses (and the uncertainty terms) to the next-item loss."""

    name = "multitask"

    def __init__(self, config: MultiTaskConfig, categories: np.ndarray | None = None) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.needs_labels = "like" in config.tasks
        if "category" in config.tasks:
            if categories is None or categories.shape[1] == 0:
                raise ConfigError("multitask task 'category' has no categories to predict")
            self.register_buffer("categories", torch.from_numpy(categories))  # (n_items, K)
        # Log-variances: index 0 the next-item task, then the auxiliary tasks in config order.
        self.log_vars = nn.Parameter(torch.zeros(1 + len(config.tasks))) if config.weights == "uncertainty" else None
        self.heads: nn.ModuleDict | None = None  # built at the first wrap, when the width is known
        self._sums: dict[str, float] = {}
        self._steps = 0

    def wrap(self, trainer) -> None:
        """Build the heads for the network's width (a refit keeps the evaluated fit's heads) and add
        every parameter of the hook to the trainer's optimizer."""
        if self.heads is None:
            d = trainer.module.item_table().shape[1]
            heads = {}
            if "like" in self.config.tasks:
                heads["like"] = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))
            if "category" in self.config.tasks:
                heads["category"] = nn.Linear(d, self.categories.shape[1])
            self.heads = nn.ModuleDict(heads)
        trainer.optimizer.add_param_group({"params": list(self.parameters())})

    def task_losses(self, output: StepOutput) -> dict[str, torch.Tensor]:
        ctx = output.context
        inputs, targets, hidden, table = ctx["inputs"], ctx["targets"], ctx["hidden"], ctx["table"]
        trained = (targets != 0) & (inputs != 0)  # (B, L)
        h, t = hidden[trained].float(), targets[trained] - 1  # (N, D), (N,) item indices
        out = {}
        if "like" in self.config.tasks:
            labels = ctx["labels"][trained]  # (N,)
            known = labels >= 0
            if known.any():
                x = torch.cat([h[known], table[t[known] + 1].float()], dim=-1)  # (N', 2D)
                out["like"] = F.binary_cross_entropy_with_logits(self.heads["like"](x).squeeze(-1), labels[known].float())
        if "category" in self.config.tasks:
            y = self.categories[t]  # (N, K) multi-hot
            has = y.sum(1) > 0
            if has.any():
                y = y[has] / y[has].sum(1, keepdim=True)  # categories as a distribution
                out["category"] = -(y * F.log_softmax(self.heads["category"](h[has]), dim=-1)).sum(1).mean()
        return out

    def extra_loss(self, batch, output: StepOutput) -> torch.Tensor | None:
        losses = self.task_losses(output)
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())
        self._steps += 1
        if not losses:
            return None
        if self.log_vars is None:
            weights = {"like": self.config.like_weight, "category": self.config.category_weight}
            return sum(weights[k] * v for k, v in losses.items())
        s = self.log_vars
        # exp(-s_0) L_main + s_0, written as what is added to the model's own L_main.
        extra = (torch.exp(-s[0]) - 1) * output.loss + s[0]
        for j, task in enumerate(self.config.tasks, start=1):
            if task in losses:
                extra = extra + torch.exp(-s[j]) * losses[task] + s[j]
        return extra

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        for k, v in self._sums.items():
            record[f"task/{k}"] = v / max(1, self._steps)
        if self.log_vars is not None:
            for j, task in enumerate(["next-item", *self.config.tasks]):
                record[f"weight/{task}"] = float(torch.exp(-self.log_vars[j].detach()))
        self._sums, self._steps = {}, 0
