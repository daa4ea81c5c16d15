"""A training loop that knows nothing about a specific model.

It needs a module, a function that yields an epoch's batches, a function that turns a batch
into a loss (a tensor or a :class:`StepOutput`), and optionally a validation function (higher
is better). It provides AdamW, gradient clipping, a warm-up + cosine schedule fitted to the time
budget, early stopping with the best weights restored, a progress bar with live loss and metric,
checkpoints (safetensors + JSON, no pickle) it can resume from, and hooks (:mod:`.hooks`).

Every step's learning rate is recorded, so that a second run on more data (the refit of the
served model) can follow the same path step by step (``follow``) instead of re-deriving it from
a clock that runs differently.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load_file, save_file

from lmrec.training.config import RuntimeConfig, TrainingConfig
from lmrec.training.device import to_device
from lmrec.training.hooks import StepOutput, TrainingHook

VALIDATION_SHARE = 0.15  # eval_every "auto": validation may take about this share of the training time
MAX_EVAL_EVERY = 5
# patience "auto": stop after this many epochs without gain (and at least MIN_BAD_CHECKS checks), so
# that frequent checks on noisy small validation sets do not stop a run early (Last.fm: best at
# epoch 7 of 12 with 5 checks, against epoch 10 of 20 with 10 epochs).
PATIENCE_EPOCHS = 10
MIN_BAD_CHECKS = 2


@dataclass
class LRPath:
    """The learning rate of every optimizer step of a finished run, and its batches per epoch."""

    lrs: list[float]
    steps_per_epoch: float  # fractional when the path is compressed into fewer epochs

    def at(self, step: int, steps_per_epoch: int) -> float:
        """The rate at ``step`` of a run with ``steps_per_epoch`` batches: the path stretched by the
        ratio of epoch lengths, so that each epoch of the new run sees the same part of the schedule."""
        j = int(step * self.steps_per_epoch / max(1, steps_per_epoch))
        return self.lrs[min(j, len(self.lrs) - 1)]


@dataclass
class TrainState:
    epoch: int = 0
    best_epoch: int = 0
    best_score: float = float("-inf")
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    steps: int = 0  # optimizer steps taken
    steps_per_epoch: int = 0  # in the last finished epoch
    eval_every: int = 0  # resolved value of the config's eval_every (auto: re-measured at every check)
    next_check: int = 1  # epoch of the next validation check
    lrs: list[float] = field(default_factory=list)  # learning rate of every step
    stopped_by: str = ""  # "epochs", "patience", "time budget" or "follow"
    events: int = 0  # events of the data trained on (set by the model: what a refit scales epoch times by)

    def lr_path(self, up_to_epoch: int | None = None) -> LRPath:
        """The steps up to the end of ``up_to_epoch`` (default: all)."""
        n = len(self.lrs) if up_to_epoch is None else up_to_epoch * self.steps_per_epoch
        return LRPath(self.lrs[:n], self.steps_per_epoch)


def concrete(value: Any, name: str) -> Any:
    if value == "auto":
        raise ValueError(f"training.{name} is still 'auto': resolve the config (lmrec.training.auto) first")
    return value


class Trainer:
    def __init__(
        self,
        module: torch.nn.Module,
        batches: Callable[[int], Iterable[Any]],
        loss_fn: Callable[[Any], torch.Tensor | StepOutput],
        config: TrainingConfig,
        validate: Callable[[], float] | None = None,
        *,
        runtime: RuntimeConfig | None = None,
        time_budget_s: float | None = None,
        follow: LRPath | None = None,
        hooks: Sequence[TrainingHook] = (),
        device: torch.device | None = None,
    ) -> None:
        """``time_budget_s``: stop after the epoch that crosses it, and fit the cosine to it.
        ``follow``: take every step's learning rate from an earlier run's path (the refit).
        ``device``: where ``module`` is and the steps run (batches are moved there); validation
        runs with the module moved to the CPU (``lmrec.training.device``)."""
        self.module, self.batches, self.loss_fn, self.config = module, batches, loss_fn, config
        self.runtime = runtime or RuntimeConfig()
        self.validate, self.time_budget_s, self.follow, self.hooks = validate, time_budget_s, follow, list(hooks)
        self.device = device or torch.device("cpu")
        self.epochs = concrete(config.epochs, "epochs")
        self.lr = concrete(config.lr, "lr")
        self.checkpoint_dir = Path(self.runtime.checkpoint_dir) if self.runtime.checkpoint_dir else None
        self.optimizer = torch.optim.AdamW(module.parameters(), lr=self.lr,
                                           weight_decay=concrete(config.weight_decay, "weight_decay"))
        self.state = TrainState()
        # Values every process of a distributed run must share (rank 0's): the learning rate of a
        # step, a validation score, the seconds spent (the time budget's stop). Identity alone.
        self.agree: Callable[[float], float] = lambda value: value
        self._best_weights: dict[str, torch.Tensor] | None = None
        # Before any checkpoint is loaded: a hook may add parameters (auxiliary heads) to the optimizer.
        for hook in self.hooks:
            hook.wrap(self)

    # --- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        assert self.checkpoint_dir is not None
        d = self.checkpoint_dir
        d.mkdir(parents=True, exist_ok=True)
        opt = self.optimizer.state_dict()
        tensors = {f"model.{k}": v.contiguous() for k, v in self.module.state_dict().items()}
        for idx, st in opt["state"].items():
            for name, value in st.items():
                tensors[f"optim.{idx}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
        if self._best_weights is not None:
            tensors |= {f"best.{k}": v for k, v in self._best_weights.items()}
        tensors = {k: v.cpu() for k, v in tensors.items()}
        tmp = d / "checkpoint.safetensors.tmp"
        save_file(tensors, tmp)
        tmp.replace(d / "checkpoint.safetensors")
        meta = {"state": self.state.__dict__, "param_groups": opt["param_groups"]}
        (d / "trainer.json.tmp").write_text(json.dumps(meta))
        (d / "trainer.json.tmp").replace(d / "trainer.json")

    def load_checkpoint(self) -> bool:
        """Resume from the checkpoint directory if it holds a checkpoint; True when one was loaded."""
        d = self.checkpoint_dir
        if d is None or not (d / "checkpoint.safetensors").exists():
            return False
        tensors = load_file(d / "checkpoint.safetensors")
        meta = json.loads((d / "trainer.json").read_text())
        self.module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        self.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        self._best_weights = best or None
        self.state = TrainState(**meta["state"])
        return True

    # --- schedule --------------------------------------------------------------------------
    def lr_factor(self, step: int, progress: float) -> float:
        """Multiplier of the base learning rate at optimizer ``step`` and training ``progress`` in [0, 1]."""
        warmup = concrete(self.config.warmup_steps, "warmup_steps")
        warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
        if concrete(self.config.lr_schedule, "lr_schedule") == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return warm

    def _progress(self, epoch_fraction: float, seconds: float) -> float:
        """Share of the plan done: of the epochs or, when it comes first, of the time budget."""
        by_epochs = epoch_fraction / self.epochs
        return max(by_epochs, seconds / self.time_budget_s) if self.time_budget_s else by_epochs

    def progress(self) -> float:
        """Share of the plan done at the end of the last finished epoch."""
        return self._progress(self.state.epoch, self.state.train_seconds)

    def _step_lr(self, count: int, n_batches: int, seconds: float) -> float:
        st = self.state
        if self.follow is not None:
            return self.follow.at(st.steps, n_batches)
        fraction = st.epoch + count / max(1, n_batches)
        return self.lr * self.lr_factor(st.steps, self._progress(fraction, seconds))

    def _eval_every(self, epoch_s: float, valid_s: float) -> int:
        value = self.config.eval_every
        if value != "auto":
            return value
        return max(1, min(MAX_EVAL_EVERY, math.ceil(valid_s / max(1e-9, VALIDATION_SHARE * epoch_s))))

    # --- loop ------------------------------------------------------------------------------
    def _validate(self) -> float:
        """The validation score, computed on the CPU path (the one evaluation and serving run)."""
        if self.device.type == "cpu":
            return float(self.validate())
        self.module.to("cpu")
        try:
            return float(self.validate())
        finally:
            self.module.to(self.device)

    def _stop_reason(self, bad_checks: int) -> str:
        st, patience = self.state, self.config.patience
        if st.epoch >= self.epochs:
            return "follow" if self.follow is not None else "epochs"
        if patience == "auto":
            if bad_checks >= MIN_BAD_CHECKS and st.epoch - st.best_epoch >= PATIENCE_EPOCHS:
                return "patience"
        elif patience is not None and bad_checks >= patience:
            return "patience"
        if self.time_budget_s is not None and st.train_seconds >= self.time_budget_s:
            return "time budget"
        return ""

    def fit(self) -> TrainState:
        cfg, st = self.config, self.state
        bf16 = concrete(cfg.bf16, "bf16")
        if cfg.eval_every != "auto" and not st.eval_every:
            st.eval_every = st.next_check = cfg.eval_every
        # On resume, the checks since the best one still count towards patience.
        scores = [h["valid"] for h in st.history if "valid" in h]
        bad_checks = len(scores) - 1 - max(range(len(scores)), key=scores.__getitem__) if scores else 0
        columns = [TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}  valid {task.fields[valid]}"), TimeElapsedColumn()]
        with Progress(*columns, disable=not self.runtime.progress, transient=False) as bar:
            task = bar.add_task("train", total=self.epochs, completed=st.epoch, epoch=st.epoch, loss=float("nan"),
                                valid="-")
            while not (reason := self._stop_reason(bad_checks)):
                t0 = time.perf_counter()
                self.module.train()
                sums: dict[str, float] = {}
                count = 0
                epoch_batches = list(self.batches(st.epoch))
                for batch in epoch_batches:
                    lr = self.agree(self._step_lr(count, len(epoch_batches), st.train_seconds + time.perf_counter() - t0))
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    self.optimizer.zero_grad(set_to_none=True)
                    batch = to_device(batch, self.device)
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                        out = self.loss_fn(batch)
                        out = out if isinstance(out, StepOutput) else StepOutput(out)
                        terms = {"loss": out.loss}
                        for hook in self.hooks:
                            extra = hook.extra_loss(batch, out)
                            if extra is not None:
                                terms[f"loss/{hook.name}"] = extra
                        loss = sum(terms.values())
                    if loss.requires_grad:  # else the loss function set the gradients (per-sample, DP-SGD)
                        loss.backward()
                    for hook in self.hooks:
                        hook.after_backward(self)
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    st.lrs.append(lr)
                    for name, value in terms.items():
                        sums[name] = sums.get(name, 0.0) + float(value.detach())
                    count, st.steps = count + 1, st.steps + 1
                    bar.update(task, loss=sums["loss"] / count)
                st.epoch, st.steps_per_epoch = st.epoch + 1, count
                epoch_s = time.perf_counter() - t0
                record = {"epoch": st.epoch, **{k: v / max(count, 1) for k, v in sums.items()}, "seconds": epoch_s,
                          "lr": self.optimizer.param_groups[0]["lr"]}
                if self.validate is not None and (st.epoch >= st.next_check or st.epoch == self.epochs):
                    self.module.eval()
                    tv = time.perf_counter()
                    score = self.agree(self._validate())
                    st.eval_every = int(self.agree(self._eval_every(epoch_s, time.perf_counter() - tv)))
                    st.next_check = st.epoch + st.eval_every
                    record["valid"] = score
                    if score > st.best_score:
                        st.best_score, st.best_epoch, bad_checks = score, st.epoch, 0
                        self._best_weights = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
                    else:
                        bad_checks += 1
                    bar.update(task, valid=f"{score:.4f} (best {st.best_score:.4f} @ {st.best_epoch})")
                st.train_seconds = self.agree(st.train_seconds + time.perf_counter() - t0)  # validation included
                record["elapsed"] = st.train_seconds
                for hook in self.hooks:
                    hook.on_epoch_end(self, record)
                st.history.append(record)
                bar.update(task, completed=st.epoch, epoch=st.epoch)
                if self.checkpoint_dir is not None:
                    self.save_checkpoint()
        st.stopped_by = reason
        if self._best_weights is not None:
            self.module.load_state_dict(self._best_weights)
        elif self.validate is None:
            st.best_epoch = st.epoch
        self.module.eval()
        return st
