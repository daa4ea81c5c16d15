"""Leakage-safe splits. Each event gets a label: TRAIN, VALID or TEST.

Both splits respect time: for every user, nothing labelled TRAIN happens after anything
labelled VALID or TEST, so a model fitted on TRAIN never sees the future it is judged on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmrec.data.sequences import Interactions, Sequences

TRAIN, VALID, TEST = 0, 1, 2
HIDDEN = 3  # removed from the data: neither training, history nor target


class _SplitBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cold_item_fraction: float = Field(
        0.0, ge=0, lt=0.5, description="cold-item protocol: hold out this share of items from training entirely; "
        "they stay in the catalogue and only their test events remain (as targets). A second, disjoint group of "
        "the same size is held out until validation (only its validation and test events remain), so that "
        "validation has cold targets too and choices for cold items are made there, never on test")
    cold_item_seed: int = 0


class LeaveOneOutConfig(_SplitBase):
    """Each user's last event is the test target, the one before it the validation target.

    Users with fewer than ``min_events`` events keep everything in training (they have no
    evaluation target), as in SASRec/BERT4Rec.
    """

    kind: Literal["leave-one-out"] = "leave-one-out"
    min_events: int = Field(3, ge=3)


class TemporalConfig(_SplitBase):
    """One global cut in time for test, one before it for validation (a time or a quantile of all
    timestamps). Events at or after the test cut are TEST, those in between VALID."""

    kind: Literal["temporal"] = "temporal"
    test_time: int | None = None
    test_quantile: float | None = Field(None, gt=0, lt=1)
    valid_time: int | None = None
    valid_quantile: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_cut_each(self) -> TemporalConfig:
        if self.test_time is None and self.test_quantile is None:
            self.test_quantile = 0.9
        if self.valid_time is None and self.valid_quantile is None:
            self.valid_quantile = 0.8
        if self.test_time is not None and self.test_quantile is not None:
            raise ValueError("give test_time or test_quantile, not both")
        if self.valid_time is not None and self.valid_quantile is not None:
            raise ValueError("give valid_time or valid_quantile, not both")
        return self


SplitConfig = Annotated[LeaveOneOutConfig | TemporalConfig, Field(discriminator="kind")]


def leave_one_out(data: Interactions, min_events: int = 3) -> np.ndarray:
    labels = np.full(len(data), TRAIN, dtype=np.int8)
    counts = np.bincount(data.user, minlength=data.n_users)
    ends = np.cumsum(counts)  # events are sorted by user: a user's last event sits at ends[u] - 1
    eligible = counts >= min_events
    labels[ends[eligible] - 1] = TEST
    labels[ends[eligible] - 2] = VALID
    return labels


def temporal(data: Interactions, config: TemporalConfig) -> np.ndarray:
    ts = data.timestamp
    test_cut = config.test_time if config.test_time is not None else np.quantile(ts, config.test_quantile)
    valid_cut = config.valid_time if config.valid_time is not None else np.quantile(ts, config.valid_quantile)
    if valid_cut > test_cut:
        raise ValueError(f"validation cut {valid_cut} is after the test cut {test_cut}")
    labels = np.full(len(data), TRAIN, dtype=np.int8)
    labels[ts >= valid_cut] = VALID
    labels[ts >= test_cut] = TEST
    return labels


def without_last_events(data: Interactions) -> Interactions:
    """Every user's events except the last one (events are sorted by user, then time).

    Fitted on this and judged on validation, a model is one unseen event behind its target, as a
    model fitted on the training part is at test time: the test input's latest event (the
    validation one) is in nobody's training data.
    """
    counts = np.bincount(data.user, minlength=data.n_users)
    keep = np.ones(len(data), dtype=bool)
    keep[np.cumsum(counts)[counts > 0] - 1] = False
    return data.subset(keep)


def hold_out_items(data: Interactions, labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Make two disjoint random groups of ``fraction`` of the items cold.

    Test group: every event becomes HIDDEN except test events, so no model learns from them and no
    history contains them, yet they remain test targets. Validation group: every event before
    validation becomes HIDDEN, so they are cold validation targets (what choices for cold items
    are made on); their validation events are then history at test time like any other.
    """
    rng = np.random.default_rng(seed)
    present = np.unique(data.item)
    n = int(round(fraction * present.size))
    cold_test = rng.choice(present, size=n, replace=False)  # drawn first: the same group as before
    cold_valid = rng.choice(np.setdiff1d(present, cold_test), size=n, replace=False)
    out = labels.copy()
    out[np.isin(data.item, cold_test) & (labels != TEST)] = HIDDEN
    out[np.isin(data.item, cold_valid) & (labels == TRAIN)] = HIDDEN
    return out


def cold_items(labels: np.ndarray, data: Interactions, stage: int) -> np.ndarray:
    """Items that have events at ``stage`` but none before it (the cold bucket's items)."""
    before = np.zeros(data.n_items, dtype=bool)
    before[data.item[labels < stage]] = True
    at = np.zeros(data.n_items, dtype=bool)
    at[data.item[labels == stage]] = True
    return np.flatnonzero(at & ~before)


def make_split(data: Interactions, config: LeaveOneOutConfig | TemporalConfig) -> np.ndarray:
    """Per-event labels (TRAIN=0, VALID=1, TEST=2, HIDDEN=3), aligned with ``data``."""
    if isinstance(config, LeaveOneOutConfig):
        labels = leave_one_out(data, config.min_events)
    else:
        labels = temporal(data, config)
    if config.cold_item_fraction > 0:
        labels = hold_out_items(data, labels, config.cold_item_fraction, config.cold_item_seed)
    return labels


@dataclass
class EvalSet:
    """Users to evaluate at one stage, what the model may read, and what it must find.

    ``histories`` are every event of the user before the stage (the whole history, which is
    also what counts as seen); ``targets`` are the user's items in the stage.
    """

    users: np.ndarray  # (U,) user indices
    histories: Sequences  # U rows, time-ordered item indices
    targets: Sequences  # U rows


def eval_set(data: Interactions, labels: np.ndarray, stage: int) -> EvalSet:
    """The evaluation set for ``stage`` (VALID or TEST); history = events labelled before it."""
    target_mask = labels == stage
    users = np.unique(data.user[target_mask])
    history = data.subset(labels < stage)
    targets = data.subset(target_mask)
    return EvalSet(
        users=users,
        histories=history.sequences().take(users),
        targets=targets.sequences().take(users),
    )


@dataclass
class InterestSet:
    """Labelled events to predict at one stage: each user's events before the stage (with their
    labels, the model's input) and the stage's labelled events (candidate items and the truth)."""

    users: np.ndarray  # (U,) user indices
    histories: Sequences  # U rows of item indices
    history_labels: Sequences  # U rows, aligned with histories: 1 like, 0 dislike, -1 unlabelled
    candidates: Sequences  # U rows of item indices to predict
    targets: np.ndarray  # (N,) 0/1 labels, aligned with candidates.values


def interest_set(data: Interactions, labels: np.ndarray, stage: int) -> InterestSet:
    """The interest-prediction set for ``stage`` (VALID or TEST); only labelled events are targets."""
    if data.label is None:
        raise ValueError("interest prediction needs like / dislike labels (data.like_threshold or data.event_labels)")
    target_mask = (labels == stage) & (data.label >= 0)
    users = np.unique(data.user[target_mask])
    history = data.subset(labels < stage)
    targets = data.subset(target_mask)
    return InterestSet(users=users, histories=history.sequences().take(users),
                       history_labels=history.label_sequences().take(users),
                       candidates=targets.sequences().take(users),
                       targets=targets.label_sequences().take(users).values)
