"""Multi-task training of the next-item models: auxiliary heads on the same user states.

Beside the next-item loss, at every trained position (the state after events <= t, predicting
event t + 1):

* ``like``: will the user like event t + 1's item? A small MLP over [state, item vector] and
  binary cross-entropy on the labelled events (needs like / dislike labels).
* ``category``: which categories does the next item have (ML genres, Beauty attributes)? A linear
  head and a cross-entropy against the item's categories as a distribution.
* ``item_category``: which categories does each item of the batch have, read from the item's own
  vector (S3-Rec's associated-attribute prediction, Zhou et al. 2020)? The same loss on the item
  side: items that share categories get vectors that share directions, which the next-item loss
  alone only teaches items with many events.

Task weights are fixed (``like_weight``, ``category_weight``, ``item_category_weight``; the
next-item loss weighs 1) or learned by uncertainty weighting (Kendall, Gal & Cipolla 2018): every
task's loss L_k becomes exp(-s_k) L_k + s_k with a learned log-variance s_k, the next-item task's
included.
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

    tasks: list[Literal["like", "category", "item_category"]] = Field(
        default_factory=list, description="auxiliary heads: like (needs like / dislike labels), category (the next "
        "item's categories from the user state), item_category (each item's categories from its own vector); both "
        "category tasks need item categories")
    weights: Literal["fixed", "uncertainty"] = Field(
        "fixed", description="fixed: the *_weight values (next-item loss: 1); uncertainty: learned per task")
    like_weight: float = Field(0.5, ge=0)
    category_weight: float = Field(0.5, ge=0)
    item_category_weight: float = Field(0.5, ge=0)
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

    def uses_categories(self) -> bool:
        return bool({"category", "item_category"} & set(self.tasks))


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
        raise ConfigError(f"multitask tasks 'category' / 'item_category' need the items file's {column!r} column "
                          f"(it has {have}); set multitask.category_column or multitask.category_vectors")
    lists = [[] if v is None else [c.strip() for c in str(v).split("|") if c.strip()] for v in item_info[column]]
    vocab = {c: j for j, c in enumerate(sorted({c for row in lists for c in row}))}
    out = np.zeros((len(lists), len(vocab)), dtype=np.float32)
    for i, row in enumerate(lists):
        out[i, [vocab[c] for c in row]] = 1.0
    return out


def _category_ce(head: nn.Module, x: torch.Tensor, multi_hot: torch.Tensor) -> torch.Tensor | None:
    """Mean cross-entropy of head(x) against the rows' categories (multi-hot (N, K)) read as
    distributions, over the rows that have any (None where none has)."""
    has = multi_hot.sum(1) > 0  # (N,)
    if not has.any():
        return None
    y = multi_hot[has] / multi_hot[has].sum(1, keepdim=True)  # (N', K)
    return -(y * F.log_softmax(head(x[has]), dim=-1)).sum(1).mean()


class MultiTask(TrainingHook, nn.Module):
    """The auxiliary heads as a training hook: its parameters join the optimizer when the trainer
    is built; each step adds the heads' losses (and the uncertainty terms) to the next-item loss."""

    name = "multitask"

    def __init__(self, config: MultiTaskConfig, categories: np.ndarray | None = None) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.needs_labels = "like" in config.tasks
        if config.uses_categories():
            if categories is None or categories.shape[1] == 0:
                raise ConfigError("multitask tasks 'category' / 'item_category' have no categories to predict")
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
            for task in ("category", "item_category"):
                if task in self.config.tasks:
                    heads[task] = nn.Linear(d, self.categories.shape[1])
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
            if (loss := _category_ce(self.heads["category"], h, self.categories[t])) is not None:
                out["category"] = loss
        if "item_category" in self.config.tasks:
            items = torch.unique(torch.cat([t, inputs[inputs != 0] - 1]))  # (M,) the batch's items
            x = table[items + 1].float()  # (M, D) their own vectors
            if (loss := _category_ce(self.heads["item_category"], x, self.categories[items])) is not None:
                out["item_category"] = loss
        return out

    def extra_loss(self, batch, output: StepOutput) -> torch.Tensor | None:
        losses = self.task_losses(output)
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())
        self._steps += 1
        if not losses:
            return None
        if self.log_vars is None:
            weights = {"like": self.config.like_weight, "category": self.config.category_weight,
                       "item_category": self.config.item_category_weight}
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
