"""A user -> user relation (friends, follows) read from a file and kept with the run.

Relations are treated as undirected (a friend's taste says something about you either way).
Users the file names that are not in the run's data are reported and skipped, as are self-loops
and repeated pairs; a file without a usable pair of columns is an error naming its columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from lmrec.data.readers import ROW, read_table
from lmrec.data.vocab import Vocabulary
from lmrec.errors import DataValidationError

USER_NAMES = ("user_id", "userid", "user", "source", "src", "follower")
FRIEND_NAMES = ("friend_id", "friendid", "friend", "target", "dst", "followee")


@dataclass
class SocialReport:
    edges: int = 0  # undirected pairs kept
    unknown_users: int = 0  # rows naming a user that is not in the data
    unknown_examples: list = field(default_factory=list)
    self_loops: int = 0
    duplicates: int = 0

    def lines(self) -> list[str]:
        out = [f"social graph: {self.edges:,} relations"]
        if self.unknown_users:
            out.append(f"skipped {self.unknown_users:,} rows naming users that are not in the data "
                       f"(e.g. {self.unknown_examples[:3]})")
        if self.self_loops:
            out.append(f"skipped {self.self_loops:,} rows relating a user to themself")
        if self.duplicates:
            out.append(f"skipped {self.duplicates:,} repeated pairs")
        return out


def _column(df: pl.DataFrame, names: tuple[str, ...], given: str | None, role: str, path: Path) -> str:
    columns = [c for c in df.columns if c != ROW]
    if given is not None:
        if given not in columns:
            raise DataValidationError(f"no column {given!r} for the {role} (columns: {', '.join(columns)})",
                                      path=path, column=given)
        return given
    for c in columns:
        if c.strip().lower() in names:
            return c
    raise DataValidationError(f"cannot tell which column is the {role} (columns: {', '.join(columns)}); expected "
                              f"one of {', '.join(names)}, or name it with --social-{role}-col", path=path)


def read_social(path: str | Path, users: Vocabulary, *, user_col: str | None = None,
                friend_col: str | None = None, user_map=None) -> tuple[np.ndarray, SocialReport]:
    """(E, 2) user-index pairs (each undirected relation once, smaller index first) and a report;
    ``user_map`` turns the file's ids into the data's (pseudonyms)."""
    path = Path(path)
    df = read_table(path, separator="\t" if path.suffix.lower() == ".dat" else None)
    a_col = _column(df, USER_NAMES, user_col, "user", path)
    b_col = _column(df, FRIEND_NAMES, friend_col, "friend", path)
    report = SocialReport()
    pairs = []
    for a, b in zip(df[a_col].to_list(), df[b_col].to_list(), strict=True):
        a, b = (None if v is None else str(v).strip() for v in (a, b))
        if user_map is not None:
            a, b = (None if v is None else user_map(v) for v in (a, b))
        if a is None or b is None or a not in users or b not in users:
            report.unknown_users += 1
            if len(report.unknown_examples) < 5:
                report.unknown_examples.append(a if a is None or a not in users else b)
            continue
        i, j = users.index(a), users.index(b)
        if i == j:
            report.self_loops += 1
            continue
        pairs.append((min(i, j), max(i, j)))
    edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    unique = np.unique(edges, axis=0)
    report.duplicates = len(edges) - len(unique)  # (a, b) and (b, a) rows of a symmetric file count here
    report.edges = len(unique)
    if not report.edges:
        raise DataValidationError(f"no relation between users of the data ({report.unknown_users:,} rows name "
                                  f"unknown users, {report.self_loops:,} self-loops)", path=path)
    return unique, report


def adjacency(pairs: np.ndarray, n_users: int) -> sp.csr_matrix:
    """(n_users, n_users) symmetric 0/1 matrix of the pairs."""
    a = sp.coo_matrix((np.ones(len(pairs), np.float32), (pairs[:, 0], pairs[:, 1])), shape=(n_users, n_users))
    a = (a + a.T).tocsr()
    a.data[:] = 1.0
    return a


def id_pairs(pairs: np.ndarray, users: Vocabulary) -> list[tuple[str, str]]:
    """Index pairs as original ids (text), so the service can relate users the run never saw."""
    return [(str(users.ids[i]), str(users.ids[j])) for i, j in pairs]


def load_pairs(source) -> list[tuple[str, str]]:
    df = pl.read_parquet(source)
    return list(zip(df["user_id"].to_list(), df["friend_id"].to_list(), strict=True))
