"""Compact containers for event data: CSR sequences and the processed interaction table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class Sequences:
    """Variable-length integer sequences in CSR form: row ``r`` is ``values[indptr[r]:indptr[r + 1]]``.

    Used for user histories (time-ordered item indices) and evaluation targets. Keeping
    them as two flat arrays makes batching a slicing operation, not a Python loop.
    """

    indptr: np.ndarray  # (R + 1,) int64
    values: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        if self.indptr.ndim != 1 or self.indptr.size == 0 or self.indptr[0] != 0:
            raise ValueError("indptr must be a non-empty 1-D array starting at 0")
        if self.indptr[-1] != self.values.size:
            raise ValueError(f"indptr ends at {self.indptr[-1]} but there are {self.values.size} values")

    @classmethod
    def from_lists(cls, rows: list[list[int]] | list[np.ndarray]) -> Sequences:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        values = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else np.zeros(0, np.int64)
        return cls(indptr, values.astype(np.int64, copy=False))

    @classmethod
    def from_sorted_groups(cls, group: np.ndarray, values: np.ndarray, n_groups: int) -> Sequences:
        """Build from ``values`` already sorted by ``group`` (ids in ``[0, n_groups)``)."""
        counts = np.bincount(group, minlength=n_groups)
        indptr = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, np.asarray(values, dtype=np.int64))

    @classmethod
    def concat(cls, *parts: Sequences) -> Sequences:
        """The rows of every part, in order."""
        indptr = [np.zeros(1, dtype=np.int64)]
        offset = 0
        for part in parts:
            indptr.append(part.indptr[1:] + offset)
            offset += part.values.size
        return cls(np.concatenate(indptr), np.concatenate([p.values for p in parts]).astype(np.int64, copy=False))

    def __len__(self) -> int:
        return self.indptr.size - 1

    def __getitem__(self, r: int) -> np.ndarray:
        return self.values[self.indptr[r] : self.indptr[r + 1]]

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row_ids(self) -> np.ndarray:
        """Row index of every value, aligned with ``values``."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths())

    def take(self, rows: np.ndarray | slice) -> Sequences:
        """The sub-collection of the given rows, in the given order."""
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # Gather all the slices at once: position j of the output row r maps to starts[r] + j.
        offsets = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        return Sequences(indptr, self.values[np.repeat(starts, lengths) + offsets])

    def prefixes(self, lengths: np.ndarray) -> Sequences:
        """Each row cut to its first ``lengths[r]`` values (``lengths`` <= the row lengths)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        offsets = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        return Sequences(indptr, self.values[np.repeat(self.indptr[:-1], lengths) + offsets])

    def suffixes(self, n: int) -> Sequences:
        """Each row cut to its last ``n`` values."""
        lengths = np.minimum(self.lengths(), n)
        indptr = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        offsets = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        return Sequences(indptr, self.values[np.repeat(self.indptr[1:] - lengths, lengths) + offsets])

    def to_matrix(self, n_cols: int, binary: bool = True) -> sp.csr_matrix:
        """(rows, n_cols) sparse matrix; repeated values count once when ``binary``."""
        m = sp.csr_matrix(
            (np.ones(self.values.size, dtype=np.float32), self.values, self.indptr), shape=(len(self), n_cols)
        )
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def to_padded(self, max_len: int, pad: int) -> np.ndarray:
        """(rows, max_len) array of the last ``max_len`` values of each row, right-aligned, left-padded."""
        out = np.full((len(self), max_len), pad, dtype=np.int64)
        lengths = np.minimum(self.lengths(), max_len)
        kept_lengths = np.repeat(lengths, lengths)
        rows = np.repeat(np.arange(len(self)), lengths)
        # Position of each kept value inside its (truncated) row: 0 .. length - 1.
        pos = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = max_len - kept_lengths + pos
        src = np.repeat(self.indptr[1:] - lengths, lengths) + pos
        out[rows, cols] = self.values[src]
        return out


@dataclass
class Interactions:
    """Processed events with dense indices, sorted by user, then time, then input order.

    Every array has one entry per event. ``n_users`` and ``n_items`` are the sizes of the
    vocabularies, which may be larger than the ids present (a training subset still ranks
    over the whole catalogue).
    """

    user: np.ndarray  # (N,) int64
    item: np.ndarray  # (N,) int64
    timestamp: np.ndarray  # (N,) int64, seconds
    n_users: int
    n_items: int
    label: np.ndarray | None = None  # (N,) int8: 1 like, 0 dislike, -1 unlabelled (data.labels); None: no rule
    value: np.ndarray | None = None  # (N,) float32: the event's rating / play count column; None: the data has none

    def __len__(self) -> int:
        return self.user.size

    def subset(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.user[mask], self.item[mask], self.timestamp[mask], self.n_users, self.n_items,
                            None if self.label is None else self.label[mask],
                            None if self.value is None else self.value[mask])

    def sequences(self) -> Sequences:
        """One row per user index (empty rows for users without events), items in time order."""
        return Sequences.from_sorted_groups(self.user, self.item, self.n_users)

    def label_sequences(self) -> Sequences:
        """The labels in the layout of :meth:`sequences` (needs labels)."""
        if self.label is None:
            raise ValueError("these events have no like / dislike labels")
        return Sequences.from_sorted_groups(self.user, self.label, self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item, minlength=self.n_items)

    def to_matrix(self) -> sp.csr_matrix:
        """Binary (n_users, n_items) user-item matrix."""
        return self.sequences().to_matrix(self.n_items)
