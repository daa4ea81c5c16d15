"""Stable id vocabularies: original ids <-> dense indices 0..n-1, saved as JSON with every run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.errors import DataValidationError


class Vocabulary:
    """Original ids in index order. Indices follow sorted original ids, so they do not depend on
    file order and the same id set always gives the same indices."""

    def __init__(self, ids: list[int] | list[str]) -> None:
        self.ids = list(ids)
        self.kind = "str" if self.ids and isinstance(self.ids[0], str) else "int"
        self._index = {v: i for i, v in enumerate(self.ids)}
        if len(self._index) != len(self.ids):
            raise ValueError("vocabulary ids must be unique")

    @classmethod
    def from_series(cls, s: pl.Series) -> Vocabulary:
        return cls(s.unique().sort().to_list())

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, original) -> bool:
        return self.coerce(original) in self._index

    def coerce(self, original):
        """Bring a user-typed id (always a string on the command line) to the vocabulary's type."""
        if self.kind == "int" and isinstance(original, str):
            try:
                return int(original.strip())
            except ValueError:
                return original
        if self.kind == "str" and not isinstance(original, str):
            return str(original)
        return original

    def index(self, original) -> int:
        return self._index[self.coerce(original)]

    def lookup(self, originals, *, what: str = "id") -> np.ndarray:
        """Indices of the given original ids; unknown ids are an error that lists a few of them."""
        out = np.empty(len(originals), dtype=np.int64)
        missing = []
        for j, o in enumerate(originals):
            idx = self._index.get(self.coerce(o))
            if idx is None:
                missing.append(o)
                idx = -1
            out[j] = idx
        if missing:
            raise DataValidationError(f"{len(missing)} unknown {what}(s), e.g. {missing[:5]}")
        return out

    def encode(self, s: pl.Series) -> np.ndarray:
        """Vectorised index lookup for a column whose values are all in the vocabulary."""
        mapping = pl.DataFrame({"_k": pl.Series(self.ids), "_v": np.arange(len(self.ids), dtype=np.int64)})
        joined = pl.DataFrame({"_k": s}).join(mapping, on="_k", how="left", maintain_order="left")
        if joined["_v"].null_count():
            raise ValueError("value outside the vocabulary")
        return joined["_v"].to_numpy()

    def decode(self, indices: np.ndarray) -> list:
        return [self.ids[i] for i in np.asarray(indices).ravel()]

    def extend(self, ids: list) -> None:
        """Append new ids (they get the next indices); existing indices never change."""
        for original in ids:
            original = self.coerce(original)
            if original in self._index:
                raise ValueError(f"id {original!r} is already in the vocabulary")
            self._index[original] = len(self.ids)
            self.ids.append(original)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"kind": self.kind, "ids": self.ids}))

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        return cls(json.loads(Path(path).read_text())["ids"])
