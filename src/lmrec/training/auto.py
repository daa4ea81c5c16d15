"""Automatic defaults: the values a user gets for every setting left at ``"auto"``.

Each rule is read off the benchmarks (docs/benchmarks.md, docs/defaults.md) and depends only on
the training data's :class:`~lmrec.data.profile.DataProfile`, so the same rules apply to data
the benchmarks never saw. Model-specific rules (architecture) live with each model
(``auto_values``); this module holds the training side and the resolution itself.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

from lmrec.data.profile import DataProfile
from lmrec.training.config import TrainingConfig
from lmrec.training.device import bf16_supported

DEFAULT_BUDGET_MINUTES = 24.0
WARMUP_STEPS = 200


def training_values(p: DataProfile, batch_size: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Training rules. Batches of 64 sequences below 10,000 users (ML-1M's best) and 128 above
    (Beauty's), so an epoch has ~100 steps or more; AdamW at 2e-3 with 200 warm-up steps (at most
    two epochs on small data) and a cosine fitted to the time budget (both frozen configs); weight
    decay 0.1 where users and items both have few events (Beauty). ``patience`` and ``eval_every``
    stay "auto": the trainer resolves them from measured times (see ``Trainer``). bfloat16
    autocast where ``device`` computes it natively (emulated bf16 is slower than float32). The
    refit starts from the evaluated weights, so the evaluated fit gets ~90% of the budget instead of
    half of it (ML-1M's fit was cut by the budget at ~650 s of 24 minutes; docs/benchmarks.md)."""
    batch = batch_size or (64 if p.users < 10_000 else 128)
    steps_per_epoch = max(1, math.ceil(p.users / batch))
    return {
        "time_budget": DEFAULT_BUDGET_MINUTES,
        "epochs": 200,
        "batch_size": batch,
        "lr": 2e-3,
        "weight_decay": 0.1 if p.regime == "sparse" else 0.0,
        "lr_schedule": "cosine",
        "warmup_steps": min(WARMUP_STEPS, 2 * steps_per_epoch),
        "valid_users": 10_000 if p.users > 50_000 else None,
        "bf16": bf16_supported(device),
        "refit_start": "evaluated",
    }


def resolve(config: BaseModel, rules: dict[str, Any], prefix: str) -> tuple[BaseModel, dict[str, Any]]:
    """``config`` with every ``"auto"`` field replaced by its rule, and the choices made as
    ``{"prefix.field": value}``. Fields without a rule keep "auto" (resolved later, e.g. eval_every)."""
    chosen = {name: rules[name] for name, value in config if value == "auto" and name in rules}
    resolved = type(config).model_validate(config.model_dump() | chosen)
    return resolved, {f"{prefix}.{k}": v for k, v in chosen.items()}


def resolve_training(training: TrainingConfig, p: DataProfile,
                     device: str = "cpu") -> tuple[TrainingConfig, dict[str, Any]]:
    batch = None if training.batch_size == "auto" else training.batch_size
    return resolve(training, training_values(p, batch, device), "training")
