"""Virtual users as an event file in the input schema (``user_id, item_id, timestamp``), and back.

Virtual user ids are strings ``virtual-000001``...: no real id can equal one, whatever the
real ids' type. Their timestamps are synthetic (one day apart, starting at the first training
event); they order the events and mean nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.data.readers import read_interactions
from lmrec.data.sequences import Sequences
from lmrec.data.vocab import Vocabulary
from lmrec.errors import DataValidationError

PREFIX = "virtual-"
DAY = 86_400
FORMATS = (".parquet", ".csv")


def check_output(path: Path, overwrite: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written."""
    if path.suffix not in FORMATS:
        raise DataValidationError(f"output must end in {' or '.join(FORMATS)}", path=path)
    if path.exists() and not overwrite:
        raise DataValidationError("already exists (pass --overwrite to replace it)", path=path)
    parent = path.parent
    if not parent.is_dir():
        raise DataValidationError(f"directory {parent} does not exist", path=path)
    if not os.access(parent, os.W_OK):
        raise DataValidationError(f"directory {parent} is not writable", path=path)


def virtual_frame(virtual: Sequences, items: Vocabulary, start: int) -> pl.DataFrame:
    lengths = virtual.lengths()
    width = max(6, len(str(len(virtual))))
    users = [f"{PREFIX}{u + 1:0{width}d}" for u in range(len(virtual))]
    pos = np.arange(virtual.values.size) - np.repeat(virtual.indptr[:-1], lengths)
    return pl.DataFrame({"user_id": np.repeat(np.asarray(users, dtype=object), lengths).tolist(),
                         "item_id": items.decode(virtual.values),
                         "timestamp": (start + DAY * pos).astype(np.int64)})


def write_virtual_users(virtual: Sequences, items: Vocabulary, start: int, path: Path) -> None:
    """Written to a temporary file and renamed: a failure leaves nothing half-written."""
    frame = virtual_frame(virtual, items, start)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        frame.write_parquet(tmp) if path.suffix == ".parquet" else frame.write_csv(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_virtual_users(path: str | Path, items: Vocabulary) -> Sequences:
    """Histories (item indices of ``items``, oldest first) of the users in an event file."""
    df = read_interactions(path).sort(["user", "timestamp", "_row"])
    try:
        index = items.lookup(df["item"].to_list(), what="item id")
    except DataValidationError as exc:
        raise DataValidationError(f"{exc} not in the training data's catalogue", path=path, column="item_id") from None
    codes = df["user"].rank("dense").cast(pl.Int64).to_numpy() - 1
    return Sequences.from_sorted_groups(codes, index, int(codes.max()) + 1 if len(df) else 0)
