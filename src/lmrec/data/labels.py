"""Feedback with a sign: like / dislike labels derived from ratings or event types.

A label is 1 (like), 0 (dislike) or -1 (unlabelled: an event whose type the mapping does not
name). Labels never remove events: a disliked item is still something the user interacted with,
so it stays in the history; models that read labels get it as an input feature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lmrec.data.readers import ROW
from lmrec.errors import DataValidationError

if TYPE_CHECKING:
    from lmrec.data.sequences import Interactions

LIKE, DISLIKE, UNLABELLED = 1, 0, -1
SKEWED = 2.0  # skewness of the star ratings: ML-100K -0.51, latest-small -0.62; Last.fm's play counts: 43


class LabelRule(BaseModel):
    """How events get a like / dislike label (at most one of the two ways)."""

    model_config = ConfigDict(extra="forbid")

    like_threshold: float | None = Field(
        None, description="rating >= this is a like, below it a dislike (needs a rating column)")
    event_labels: dict[str, Literal["like", "dislike"]] | None = Field(
        None, description="event type -> like or dislike (needs an event_type column); types it does not name "
        "stay unlabelled events")

    @model_validator(mode="after")
    def _one_way(self) -> LabelRule:
        if self.like_threshold is not None and self.event_labels:
            raise ValueError("give like_threshold or event_labels, not both")
        return self

    @property
    def active(self) -> bool:
        return self.like_threshold is not None or bool(self.event_labels)


def derive_labels(df: pl.DataFrame, rule: LabelRule, path: str) -> np.ndarray:
    """(N,) int8 labels for the rows of a normalised event table (see ``readers``)."""
    if rule.like_threshold is not None:
        if "rating" not in df.columns:
            raise DataValidationError(
                f"like_threshold {rule.like_threshold:g} needs ratings, but the events have no rating column "
                f"(columns: {[c for c in df.columns if c != ROW]}); map one with --rating-col or the config's "
                "data.columns.rating", path=path, column="rating")
        return np.where(df["rating"].to_numpy() >= rule.like_threshold, LIKE, DISLIKE).astype(np.int8)
    if rule.event_labels:
        if "event_type" not in df.columns:
            raise DataValidationError(
                "event_labels needs event types, but the events have no event_type column; map one with the "
                "config's data.columns.event_type", path=path, column="event_type")
        types = df["event_type"]
        present = set(types.drop_nulls().unique().to_list())
        unknown = sorted(set(rule.event_labels) - present)
        if unknown:
            raise DataValidationError(
                f"event_labels names event type(s) {unknown} that no event has; the file's types are "
                f"{sorted(present)[:20]}", path=path, column="event_type")
        mapping = {k: LIKE if v == "like" else DISLIKE for k, v in rule.event_labels.items()}
        return types.replace_strict(mapping, default=UNLABELLED, return_dtype=pl.Int8).to_numpy().astype(np.int8)
    raise ValueError("no label rule is set")


def rating_targets(train: Interactions) -> np.ndarray | None:
    """(N,) float32 standardised ratings of the events, or None where they carry none (or one value
    only, or a missing one). Counts (non-negative and right-skewed, as play counts are) are
    standardised on a log scale: raw, a few listeners' hundreds of thousands of plays take the
    whole variance, every ordinary event's target is about the same, and the squared error is
    about those few."""
    v = train.value
    if v is None or not np.isfinite(v).all() or np.unique(v).size < 2:
        return None
    v = v.astype(np.float64)
    if v.min() >= 0 and skewness(v) > SKEWED:
        v = np.log1p(v)
    return ((v - v.mean()) / v.std()).astype(np.float32)


def skewness(v: np.ndarray) -> float:
    """Sample skewness, E[(v - mean)^3] / std^3 (0 for a symmetric distribution)."""
    return float(np.mean((v - v.mean()) ** 3) / v.std() ** 3)
