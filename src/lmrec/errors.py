"""Exceptions raised by lmrec.

    LmrecError                  base class: every error lmrec raises on purpose
    ├── DataValidationError     an input file or column is not what was expected
    ├── ConfigError             a configuration key or value is invalid
    ├── NotFittedError          a model was used before fit() or load()
    └── RunError                a run directory is missing, incomplete or inconsistent
"""

from __future__ import annotations

from pathlib import Path


class LmrecError(Exception):
    """Base class for all lmrec errors."""


class DataValidationError(LmrecError, ValueError):
    """Bad input data. The message names the file, and the row and column when known.

    ``row`` is 1-based and counts data rows (the header is not a row).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.row = row
        self.column = column
        where = []
        if self.path is not None:
            where.append(self.path)
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(LmrecError, ValueError):
    """Invalid configuration (unknown key, wrong type, out-of-range value)."""


class NotFittedError(LmrecError, RuntimeError):
    """The model has not been fitted or loaded."""


class RunError(LmrecError):
    """A run directory cannot be used for the requested command."""
