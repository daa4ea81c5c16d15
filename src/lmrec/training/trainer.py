"""A training loop that knows nothing about a specific model.

It needs a module, a function that yields batches for an epoch, a function that turns a batch
into a scalar loss, and optionally a validation function (higher is better). It provides
AdamW, gradient clipping, early stopping with the best weights restored, a progress bar with
live loss and metric, and checkpoints (safetensors + JSON, no pickle) that it can resume from.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load_file, save_file


@dataclass
class TrainerConfig:
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_grad_norm: float | None = 5.0
    patience: int | None = 10  # validation checks without improvement before stopping; None: never stop early
    eval_every: int = 1  # epochs between validation checks
    bf16: bool = False  # autocast matmuls to bfloat16 on the CPU
    progress: bool = True
    time_budget_s: float | None = None  # stop after the epoch that crosses this much training time
    # "cosine": the learning rate decays to 0 by the end of training, where the end is the last
    # epoch or, when a time budget is set and would come first, the end of the budget.
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0  # linear warm-up from 0 over this many optimizer steps


@dataclass
class TrainState:
    epoch: int = 0
    best_epoch: int = 0
    best_score: float = float("-inf")
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    steps: int = 0  # optimizer steps taken
    steps_per_epoch: int = 0  # in the last finished epoch


class Trainer:
    def __init__(
        self,
        module: torch.nn.Module,
        batches: Callable[[int], Iterable[Any]],
        loss_fn: Callable[[Any], torch.Tensor],
        config: TrainerConfig,
        validate: Callable[[], float] | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        self.module, self.batches, self.loss_fn, self.config = module, batches, loss_fn, config
        self.validate = validate
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.state = TrainState()
        self._best_weights: dict[str, torch.Tensor] | None = None

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
        tmp = d / "checkpoint.safetensors.tmp"
        save_file(tensors, tmp)
        tmp.replace(d / "checkpoint.safetensors")
        meta = {"state": self.state.__dict__, "param_groups": opt["param_groups"]}
        (d / "trainer.json.tmp").write_text(json.dumps(meta))
        (d / "trainer.json.tmp").replace(d / "trainer.json")

    def load_checkpoint(self) -> bool:
        """Resume from ``checkpoint_dir`` if it holds a checkpoint; True when one was loaded."""
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

    # --- loop ------------------------------------------------------------------------------
    def lr_factor(self, step: int, progress: float) -> float:
        """Multiplier of the base learning rate at optimizer ``step`` and training ``progress`` in [0, 1]."""
        cfg = self.config
        warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return warm

    def _progress(self, epoch_fraction: float, seconds: float) -> float:
        cfg = self.config
        by_epochs = epoch_fraction / cfg.epochs
        return max(by_epochs, seconds / cfg.time_budget_s) if cfg.time_budget_s else by_epochs

    def fit(self) -> TrainState:
        cfg, st = self.config, self.state
        # On resume, the checks since the best one still count towards patience.
        scores = [h["valid"] for h in st.history if "valid" in h]
        bad_checks = len(scores) - 1 - max(range(len(scores)), key=scores.__getitem__) if scores else 0
        columns = [TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}  valid {task.fields[valid]}"), TimeElapsedColumn()]
        with Progress(*columns, disable=not cfg.progress, transient=False) as bar:
            task = bar.add_task("train", total=cfg.epochs, completed=st.epoch, epoch=st.epoch, loss=float("nan"),
                                valid="-")
            while st.epoch < cfg.epochs:
                if cfg.patience is not None and bad_checks >= cfg.patience:
                    break
                if cfg.time_budget_s is not None and st.train_seconds >= cfg.time_budget_s:
                    break
                t0 = time.perf_counter()
                self.module.train()
                total, count = 0.0, 0
                for batch in self.batches(st.epoch):
                    if cfg.schedule != "constant" or cfg.warmup_steps:
                        fraction = st.epoch + (count / st.steps_per_epoch if st.steps_per_epoch else 0.0)
                        progress = self._progress(fraction, st.train_seconds + time.perf_counter() - t0)
                        for group in self.optimizer.param_groups:
                            group["lr"] = cfg.lr * self.lr_factor(st.steps, progress)
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
                        loss = self.loss_fn(batch)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(self.module.parameters(), cfg.max_grad_norm)
                    self.optimizer.step()
                    total, count, st.steps = total + float(loss.detach()), count + 1, st.steps + 1
                    bar.update(task, loss=total / count)
                st.epoch, st.steps_per_epoch = st.epoch + 1, count
                record = {"epoch": st.epoch, "loss": total / max(count, 1), "seconds": time.perf_counter() - t0,
                          "lr": self.optimizer.param_groups[0]["lr"]}
                if self.validate is not None and (st.epoch % cfg.eval_every == 0 or st.epoch == cfg.epochs):
                    self.module.eval()
                    score = float(self.validate())
                    record["valid"] = score
                    if score > st.best_score:
                        st.best_score, st.best_epoch, bad_checks = score, st.epoch, 0
                        self._best_weights = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
                    else:
                        bad_checks += 1
                    bar.update(task, valid=f"{score:.4f} (best {st.best_score:.4f} @ {st.best_epoch})")
                st.train_seconds += time.perf_counter() - t0  # validation time included: it is part of the cost
                record["elapsed"] = st.train_seconds
                st.history.append(record)
                bar.update(task, completed=st.epoch, epoch=st.epoch)
                if self.checkpoint_dir is not None:
                    self.save_checkpoint()
        if self._best_weights is not None:
            self.module.load_state_dict(self._best_weights)
        elif self.validate is None:
            st.best_epoch = st.epoch
        self.module.eval()
        return st
