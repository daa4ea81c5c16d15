"""Turn a validated event table into a :class:`Dataset`: filter, de-duplicate, k-core, index, sort."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from lmrec.data.labels import LabelRule, derive_labels
from lmrec.data.readers import ROW
from lmrec.data.sequences import Interactions
from lmrec.data.vocab import Vocabulary
from lmrec.errors import DataValidationError


class ProcessingConfig(BaseModel):
    """How raw events become training data."""

    model_config = ConfigDict(extra="forbid")

    rating_threshold: float | None = Field(
        None, description="keep only events with rating >= this (explicit -> implicit feedback)")
    dedupe: Literal["exact", "first", "none"] = Field(
        "exact", description="exact: drop repeated (user, item, timestamp) rows; first: keep the first "
        "event of each (user, item) pair; none: keep everything")
    min_user_events: int = Field(0, ge=0, description="k-core: users need at least this many events")
    min_item_events: int = Field(0, ge=0, description="k-core: items need at least this many events")
    keep_unseen_items: bool | None = Field(
        None, description="put items of the metadata file that have no events into the catalogue "
        "(default: yes for models that use item content, which can recommend them zero-shot)")


@dataclass
class ProcessingReport:
    """What each step removed, for the run summary."""

    steps: list[tuple[str, int]] = field(default_factory=list)

    def add(self, step: str, before: int, after: int) -> None:
        if before != after:
            self.steps.append((step, before - after))


@dataclass
class Dataset:
    """Processed events plus the vocabularies and item metadata needed to speak original ids."""

    interactions: Interactions
    users: Vocabulary
    items: Vocabulary
    item_info: pl.DataFrame | None = None  # one row per catalogue item, in index order, column "item" first
    name: str = "dataset"
    report: ProcessingReport = field(default_factory=ProcessingReport)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def describe(self) -> dict:
        """Users, items, events, density, the history-length distribution and time ties.

        ``tied_events``: events with the same timestamp as their user's previous event;
        ``tied_last_events``: users whose last event ties with the one before it. Ties keep the
        input file's order, and leave-one-out holds out the last event, so where many last events
        tie the evaluation also rewards learning the file's order among them (docs/benchmarks.md,
        "Same-day ties on Beauty")."""
        inter = self.interactions
        lengths = np.bincount(inter.user, minlength=self.n_users)
        n = len(inter)
        tied = np.zeros(n, dtype=bool)  # (N,) event i has its user's previous event's timestamp
        tied[1:] = (inter.user[1:] == inter.user[:-1]) & (inter.timestamp[1:] == inter.timestamp[:-1])
        last = np.cumsum(lengths)[lengths > 0] - 1  # events are sorted by user: each user's last event
        q = np.percentile(lengths, [0, 25, 50, 75, 90, 100]) if lengths.size else np.zeros(6)
        return {
            "users": self.n_users,
            "items": self.n_items,
            "events": n,
            "density": n / max(1, self.n_users * self.n_items),
            "history_length": dict(zip(["min", "p25", "median", "p75", "p90", "max"], q.tolist(), strict=True))
            | {"mean": float(lengths.mean()) if lengths.size else 0.0},
            "users_by_history": {
                "<=5": int((lengths <= 5).sum()),
                "6-20": int(((lengths > 5) & (lengths <= 20)).sum()),
                ">20": int((lengths > 20).sum()),
            },
            "items_without_events": int((np.bincount(inter.item, minlength=self.n_items) == 0).sum()),
            "tied_events": int(tied.sum()),
            "tied_last_events": int(tied[last].sum()),
            "users_with_two_or_more_events": int((lengths >= 2).sum()),
        }


def k_core(df: pl.DataFrame, min_user: int, min_item: int) -> pl.DataFrame:
    """Iteratively drop users and items below the thresholds until both hold everywhere."""
    if min_user <= 1 and min_item <= 1:
        return df
    while True:
        before = df.height
        if min_item > 1:
            df = df.filter(pl.len().over("item") >= min_item)
        if min_user > 1:
            df = df.filter(pl.len().over("user") >= min_user)
        if df.height == before:
            return df


def process(events: pl.DataFrame, config: ProcessingConfig | None = None, items: pl.DataFrame | None = None,
            *, name: str = "dataset", items_path: str | None = None, labels: LabelRule | None = None) -> Dataset:
    """Build a :class:`Dataset` from normalised events (see ``readers.normalise_interactions``).

    With an active ``labels`` rule every event gets a like / dislike label (``Interactions.label``).

    Ordering: events are sorted by user, then timestamp, then their row in the input file, so
    ties in time keep the order the file gave them (a stable, reproducible tie-break).
    """
    config = config or ProcessingConfig()
    report = ProcessingReport()
    df = events
    if config.rating_threshold is not None:
        if "rating" not in df.columns:
            raise DataValidationError("rating_threshold is set but the events have no rating column")
        before = df.height
        df = df.filter(pl.col("rating") >= config.rating_threshold)
        report.add(f"rating < {config.rating_threshold}", before, df.height)
    before = df.height
    if config.dedupe == "exact":
        df = df.unique(subset=["user", "item", "timestamp"], keep="first", maintain_order=True)
    elif config.dedupe == "first":
        df = df.sort(["timestamp", ROW]).unique(subset=["user", "item"], keep="first", maintain_order=True)
    report.add(f"duplicates ({config.dedupe})", before, df.height)
    before = df.height
    df = k_core(df, config.min_user_events, config.min_item_events)
    report.add(f"k-core (users >= {config.min_user_events}, items >= {config.min_item_events})", before, df.height)
    if df.height == 0:
        raise DataValidationError("no events left after processing; relax the filters", path=name)

    item_info = None
    catalogue = df["item"]
    if items is not None:
        item_info, catalogue = _align_items(items, df, config, items_path or "items file")
    users = Vocabulary.from_series(df["user"])
    item_vocab = Vocabulary.from_series(catalogue)
    if labels is not None and labels.active:
        df = df.with_columns(pl.Series("_label", derive_labels(df, labels, name)))
    df = df.sort(["user", "timestamp", ROW])
    inter = Interactions(
        user=users.encode(df["user"]),
        item=item_vocab.encode(df["item"]),
        timestamp=df["timestamp"].to_numpy().astype(np.int64),
        n_users=len(users),
        n_items=len(item_vocab),
        label=df["_label"].to_numpy().astype(np.int8) if "_label" in df.columns else None,
        value=df["rating"].cast(pl.Float32).to_numpy() if "rating" in df.columns else None,
    )
    if item_info is not None:
        order = pl.DataFrame({"item": pl.Series(item_vocab.ids)})
        item_info = order.join(item_info, on="item", how="left", maintain_order="left")
    return Dataset(inter, users, item_vocab, item_info, name=name, report=report)


def _align_items(items: pl.DataFrame, df: pl.DataFrame, config: ProcessingConfig,
                 items_path: str) -> tuple[pl.DataFrame, pl.Series]:
    info = items.drop(ROW) if ROW in items.columns else items
    if info["item"].dtype != df["item"].dtype:
        # ids are integers in one file and free text in the other; ids that cannot be cast match nothing.
        info = info.with_columns(pl.col("item").cast(df["item"].dtype, strict=False)).drop_nulls("item")
    known = info["item"].is_in(df["item"].unique().implode())
    if not known.any():
        raise DataValidationError(
            f"no item id of the items file matches an item of the events (items file ids look like "
            f"{info['item'].head(3).to_list()}, event ids like {df['item'].head(3).to_list()})",
            path=items_path, column="item")
    missing = df["item"].unique().filter(~df["item"].unique().is_in(info["item"].implode()))
    if missing.len():
        warnings.warn(f"{items_path}: {missing.len()} item(s) with events have no metadata row, "
                      f"e.g. {missing.head(5).to_list()}", stacklevel=3)
    catalogue = pl.concat([df["item"].unique(), info["item"]]).unique() if config.keep_unseen_items \
        else df["item"].unique()
    return info, catalogue
