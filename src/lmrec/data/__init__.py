"""Collect and process: read event logs and item metadata, validate, filter, index and split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from lmrec.data.datasets import DATASETS, data_dir, load_named
from lmrec.data.labels import LabelRule
from lmrec.data.processing import Dataset, ProcessingConfig, process
from lmrec.data.readers import ColumnMapping, read_interactions, read_items
from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import SplitConfig, make_split
from lmrec.data.vocab import Vocabulary

DAY, WEEK = 86_400, 7 * 86_400


def load_dataset(source: str | Path, *, items: str | Path | None = None, columns: ColumnMapping | None = None,
                 processing: ProcessingConfig | None = None, item_id_column: str | None = None,
                 labels: LabelRule | None = None, exclude_users: set[str] | None = None,
                 user_map: Callable[[object], str] | None = None, coarsen_time: str = "none") -> Dataset:
    """A processed :class:`Dataset` from a dataset name (see ``DATASETS``) or an interactions file.

    For a named dataset its own processing defaults and like / dislike rule apply unless
    ``processing`` / ``labels`` are given; ``items`` then replaces its metadata file.
    Before anything else: ``user_map`` replaces every user id (pseudonyms, ``lmrec.privacy``),
    ``exclude_users`` (ids as text, after the map: forgotten users) are dropped, and timestamps
    are rounded down to the ``coarsen_time`` unit, so no vocabulary, statistic or model of the
    result holds what was removed.
    """

    def without(events: pl.DataFrame) -> pl.DataFrame:
        if user_map is not None:
            raw = events["user"].cast(pl.String)
            mapping = {u: user_map(u) for u in raw.unique().to_list()}
            events = events.with_columns(raw.replace_strict(mapping, return_dtype=pl.String).alias("user"))
        if exclude_users:
            events = events.filter(~pl.col("user").cast(pl.String).is_in(sorted(exclude_users)))
        if coarsen_time != "none":
            events = events.with_columns(pl.col("timestamp") - pl.col("timestamp") % (DAY if coarsen_time == "day"
                                                                                      else WEEK))
        return events

    if str(source) in DATASETS:
        events, item_df, spec = load_named(str(source))
        events = without(events)
        if items is not None:
            item_df = read_items(items, item_id_column)
        if (labels is None or not labels.active) and spec.like_threshold is not None:
            labels = LabelRule(like_threshold=spec.like_threshold)
        return process(events, processing or spec.processing, item_df, name=str(source),
                       items_path=str(items or spec.folder), labels=labels)
    events = without(read_interactions(source, columns))
    item_df = read_items(items, item_id_column) if items is not None else None
    return process(events, processing, item_df, name=Path(source).name, items_path=str(items) if items else None,
                   labels=labels)


__all__ = [
    "DATASETS",
    "ColumnMapping",
    "Dataset",
    "Interactions",
    "LabelRule",
    "ProcessingConfig",
    "Sequences",
    "SplitConfig",
    "Vocabulary",
    "data_dir",
    "load_dataset",
    "make_split",
    "process",
    "read_interactions",
    "read_items",
]
