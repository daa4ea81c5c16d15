"""Read event logs and item metadata from CSV/TSV/Parquet/JSON-lines (gzip allowed) with polars.

Every reader returns a polars DataFrame with canonical column names and a ``_row`` column
(1-based data row in the file) so that later validation errors can point at the exact row.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict

from lmrec.errors import DataValidationError

ROW = "_row"

# Names we look for when a column mapping leaves a role unset, in order of preference.
_CANDIDATES = {
    "user": ("user_id", "userId", "user", "UserID", "uid", "visitorid", "reviewerID", "session_id"),
    "item": ("item_id", "itemId", "item", "ItemID", "movie_id", "movieId", "iid", "asin", "product_id", "artist_id"),
    "timestamp": ("timestamp", "Timestamp", "time", "ts", "datetime", "date", "event_time", "unixReviewTime"),
    "rating": ("rating", "Rating", "score", "stars", "overall"),
    "event_type": ("event_type", "event", "type", "action"),
}


class ColumnMapping(BaseModel):
    """Which file columns play which role. ``None`` means: detect from common names."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = None
    item: str | None = None
    timestamp: str | None = None
    rating: str | None = None
    event_type: str | None = None


def _format_of(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    formats = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet",
               ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
    if ext not in formats:
        raise DataValidationError(
            f"unsupported file type {ext or '(none)'!r}; expected one of .csv, .tsv, .parquet, .jsonl "
            "(optionally .gz)",
            path=path,
        )
    return formats[ext]


def read_table(path: str | Path, *, separator: str | None = None, has_header: bool = True,
               new_columns: list[str] | None = None, encoding: str = "utf8") -> pl.DataFrame:
    """Read a whole table; strings stay strings (no type guessing), so ids keep their exact text."""
    path = Path(path)
    if not path.exists():
        raise DataValidationError("file not found", path=path)
    if path.stat().st_size == 0:
        raise DataValidationError("file is empty", path=path)
    fmt = _format_of(path) if separator is None else "csv"
    try:
        if fmt == "parquet":
            df = pl.read_parquet(path)
        elif fmt == "jsonl":
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            df = pl.read_ndjson(data)
        else:
            sep = separator or ("\t" if fmt == "tsv" else ",")
            raw = path.read_bytes()
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
            if encoding != "utf8":
                raw = raw.decode(encoding).encode("utf8")
            df = pl.read_csv(raw, separator=sep, has_header=has_header, new_columns=new_columns,
                             infer_schema=False, quote_char='"')
    except DataValidationError:
        raise
    except Exception as exc:  # polars/pyarrow/gzip raise many types; the file is what matters to the user
        raise DataValidationError(f"cannot be read as {fmt}: {exc}", path=path) from exc
    if df.height == 0:
        raise DataValidationError("file has a header but no data rows", path=path)
    return df.with_row_index(ROW, offset=1)


def _resolve(df: pl.DataFrame, role: str, wanted: str | None, path: Path, required: bool) -> str | None:
    columns = [c for c in df.columns if c != ROW]
    if wanted is not None:
        if wanted not in df.columns:
            raise DataValidationError(
                f"missing column for {role}; the file has columns {columns}", path=path, column=wanted)
        return wanted
    for name in _CANDIDATES[role]:
        if name in df.columns:
            return name
    if required:
        raise DataValidationError(
            f"no {role} column found (looked for {list(_CANDIDATES[role])}); the file has columns "
            f"{columns}; pass the column mapping (e.g. --{role.replace('_', '-')}-col NAME)", path=path)
    return None


def _first_bad_row(df: pl.DataFrame, original: str, converted: pl.Series) -> int:
    bad = df.filter(converted.is_null() & df[original].is_not_null())
    return int(bad[ROW][0])


def to_timestamp(df: pl.DataFrame, column: str, path: Path) -> pl.Series:
    """Seconds since the epoch from integers, floats or ISO-8601 date/time strings."""
    s = df[column]
    if s.null_count():
        row = int(df.filter(s.is_null())[ROW][0])
        raise DataValidationError("timestamp is missing", path=path, row=row, column=column)
    if s.dtype.is_temporal():
        return s.cast(pl.Datetime("us")).dt.epoch("s")
    if s.dtype.is_numeric():
        return s.cast(pl.Float64).floor().cast(pl.Int64)
    as_num = s.str.strip_chars().cast(pl.Float64, strict=False)
    if as_num.null_count() == 0:
        return as_num.floor().cast(pl.Int64)
    try:
        as_dt = s.str.strip_chars().str.to_datetime(strict=False, time_unit="us")
    except pl.exceptions.ComputeError:  # no date format fits any value
        as_dt = pl.Series(s.name, [None] * s.len(), dtype=pl.Datetime("us"))
    if as_dt.null_count() == 0:
        return as_dt.dt.epoch("s")
    row = _first_bad_row(df, column, as_num if as_num.null_count() <= as_dt.null_count() else as_dt)
    value = df.filter(pl.col(ROW) == row)[column][0]
    raise DataValidationError(
        f"timestamp {value!r} is neither a number (unix seconds) nor an ISO-8601 date/time",
        path=path, row=row, column=column)


def _to_float(df: pl.DataFrame, column: str, path: Path, what: str) -> pl.Series:
    s = df[column]
    out = s.cast(pl.Float64, strict=False) if s.dtype.is_numeric() else s.str.strip_chars().cast(pl.Float64, strict=False)
    if out.null_count() > s.null_count() or s.null_count():
        row = _first_bad_row(df, column, out) if out.null_count() > s.null_count() else int(df.filter(s.is_null())[ROW][0])
        value = df.filter(pl.col(ROW) == row)[column][0]
        raise DataValidationError(f"{what} {value!r} is not a number", path=path, row=row, column=column)
    return out


def _ids(df: pl.DataFrame, column: str, path: Path, role: str) -> pl.Series:
    s = df[column]
    if s.null_count():
        row = int(df.filter(s.is_null())[ROW][0])
        raise DataValidationError(f"{role} id is missing", path=path, row=row, column=column)
    if s.dtype == pl.String:
        s = s.str.strip_chars()
        empty = s.str.len_chars() == 0
        if empty.any():
            row = int(df.filter(empty)[ROW][0])
            raise DataValidationError(f"{role} id is empty", path=path, row=row, column=column)
        as_int = s.cast(pl.Int64, strict=False)
        # Integer-looking ids become integers so that "7" in one file matches 7 in another.
        if as_int.null_count() == 0 and (as_int.cast(pl.String) == s).all():
            return as_int
        return s
    if s.dtype.is_integer():
        return s.cast(pl.Int64)
    if s.dtype.is_float() and (s == s.floor()).all():
        return s.cast(pl.Int64)
    return s.cast(pl.String)


def normalise_interactions(df: pl.DataFrame, path: str | Path, columns: ColumnMapping | None = None) -> pl.DataFrame:
    """Map raw columns to ``user, item, timestamp[, rating][, event_type], _row`` with checked types."""
    path = Path(path)
    columns = columns or ColumnMapping()
    if ROW not in df.columns:
        df = df.with_row_index(ROW, offset=1)
    names = {role: _resolve(df, role, getattr(columns, role), path, required=role in ("user", "item", "timestamp"))
             for role in ("user", "item", "timestamp", "rating", "event_type")}
    out = {
        "user": _ids(df, names["user"], path, "user"),
        "item": _ids(df, names["item"], path, "item"),
        "timestamp": to_timestamp(df, names["timestamp"], path),
    }
    if names["rating"] is not None:
        out["rating"] = _to_float(df, names["rating"], path, "rating")
    if names["event_type"] is not None:
        out["event_type"] = df[names["event_type"]].cast(pl.String)
    out[ROW] = df[ROW]
    return pl.DataFrame(out)


def read_interactions(path: str | Path, columns: ColumnMapping | None = None, **read_options) -> pl.DataFrame:
    """Read and validate an event log. See :func:`normalise_interactions` for the result."""
    return normalise_interactions(read_table(path, **read_options), path, columns)


def normalise_items(df: pl.DataFrame, path: str | Path, id_column: str | None = None) -> pl.DataFrame:
    """Item metadata with an ``item`` id column first; other columns are kept as they are.

    Duplicate ids are an error (which row wins would be a guess).
    """
    path = Path(path)
    if ROW not in df.columns:
        df = df.with_row_index(ROW, offset=1)
    id_col = _resolve(df, "item", id_column, path, required=False)
    if id_col is None:
        id_col = [c for c in df.columns if c != ROW][0]
    ids = _ids(df, id_col, path, "item")
    dup = ids.is_duplicated()
    if dup.any():
        rows = df.filter(dup)[ROW].to_list()[:5]
        raise DataValidationError(
            f"item id {ids.filter(dup)[0]!r} appears more than once (rows {rows}); each item needs one row",
            path=path, column=id_col)
    rest = df.drop(id_col).with_columns(pl.col(c).str.strip_chars() for c in df.columns
                                        if c not in (id_col, ROW) and df[c].dtype == pl.String)
    return rest.insert_column(0, ids.alias("item"))


def read_items(path: str | Path, id_column: str | None = None, **read_options) -> pl.DataFrame:
    return normalise_items(read_table(path, **read_options), path, id_column)
