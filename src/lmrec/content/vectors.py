"""The content vectors of the content models: the text embedding (optionally whitened) and
precomputed per-item vectors from other modalities (image, audio, ...).

Two file formats, both keyed by the original item id so that row order never matters:

* Parquet: an id column (``item_id``, ``item`` or else the first column) and either one column
  of float lists/arrays or several numeric columns, one per dimension.
* ``.npy``: a 2-D float array with a sibling ``<name>.ids.txt`` holding one item id per line,
  in row order (a bare array cannot say which item a row belongs to).

Catalogue items missing from the file get a zero vector: the model then relies on its other
views for them, the same way it does for items without events.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.content.encoder import encode_catalogue
from lmrec.errors import DataValidationError


def _from_parquet(path: Path) -> tuple[list[str], np.ndarray]:
    df = pl.read_parquet(path)
    id_col = next((c for c in ("item_id", "item") if c in df.columns), df.columns[0])
    rest = [c for c in df.columns if c != id_col]
    lists = [c for c in rest if isinstance(df[c].dtype, pl.List | pl.Array)]
    if len(lists) == 1 and len(rest) == 1:
        try:
            vectors = np.array(df[lists[0]].to_list(), dtype=np.float32)
        except (TypeError, ValueError):
            raise DataValidationError(f"column {lists[0]!r} must hold float lists of one length", path=path,
                                      column=lists[0]) from None
    elif rest and all(df[c].dtype.is_numeric() for c in rest):
        vectors = df.select(rest).to_numpy().astype(np.float32)
    else:
        raise DataValidationError(f"expected an id column plus one column of float lists or only numeric columns; "
                                  f"found {dict(zip(df.columns, map(str, df.dtypes), strict=True))}", path=path)
    return [str(v) for v in df[id_col].to_list()], vectors


def _from_npy(path: Path) -> tuple[list[str], np.ndarray]:
    ids_path = path.with_suffix(".ids.txt")
    if not ids_path.exists():
        raise DataValidationError(f"a .npy file of item vectors needs its item ids, one per line, in {ids_path.name}",
                                  path=path)
    vectors = np.load(path, allow_pickle=False)
    ids = [line.strip() for line in ids_path.read_text().splitlines() if line.strip()]
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise DataValidationError(f"expected a 2-D array with one row per id in {ids_path.name} ({len(ids)}), "
                                  f"got shape {vectors.shape}", path=path)
    return ids, vectors.astype(np.float32)


def load_item_vectors(path: str | Path, item_ids: list) -> np.ndarray:
    """(len(item_ids), dim) vectors for the catalogue items, L2-normalised; zeros where the file has none."""
    path = Path(path)
    if not path.exists():
        raise DataValidationError("item vector file not found", path=path)
    if path.suffix == ".npy":
        ids, vectors = _from_npy(path)
    elif path.suffix in (".parquet", ".pq"):
        ids, vectors = _from_parquet(path)
    else:
        raise DataValidationError("item vectors must be a .parquet or .npy file", path=path)
    if len(set(ids)) != len(ids):
        raise DataValidationError("an item id appears more than once; each item needs one vector", path=path)
    if not np.isfinite(vectors).all():
        raise DataValidationError("vectors must be finite (found NaN or inf)", path=path)
    row = {item: i for i, item in enumerate(ids)}
    found = np.array([row.get(str(item), -1) for item in item_ids])
    if not (found >= 0).any():
        raise DataValidationError(f"none of the {len(item_ids)} catalogue item ids is in the file "
                                  f"(file ids look like {ids[:3]})", path=path)
    out = np.zeros((len(item_ids), vectors.shape[1]), dtype=np.float32)
    out[found >= 0] = vectors[found[found >= 0]]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)  # unit length, like the text vectors: no view dominates by scale


@dataclass(frozen=True)
class Whitening:
    """PCA whitening of sentence embeddings, fitted on a catalogue and applied to any item after.

    Sentence-encoder vectors are anisotropic: a few directions shared by every title dominate
    their cosine. Whitening centres the vectors and divides each principal direction by its
    standard deviation, so the cosine reflects what sets items apart (WhitenRec, Zhang et al.
    2023). Variances are shrunk towards their mean (``shrinkage``): with none, the noisiest
    directions are blown up as much as the informative ones (text-knn on Beauty: NDCG@10 0.0343
    raw, 0.0278 with shrinkage 0, 0.0454 with 0.1; docs/benchmarks.md).
    """

    mean: np.ndarray  # (T,)
    matrix: np.ndarray  # (T, T), symmetric

    @classmethod
    def fit(cls, vectors: np.ndarray, shrinkage: float) -> Whitening:
        mean = vectors.mean(axis=0)
        centred = (vectors - mean).astype(np.float64)  # (n, T)
        variances, directions = np.linalg.eigh(centred.T @ centred / max(len(vectors), 1))  # (T,), (T, T)
        # Directions the catalogue does not vary in (all of them but n - 1 when it has fewer items
        # than dimensions) are dropped: whitening would blow up whatever an added item has there.
        keep = variances > 1e-6 * max(variances.max(), 1e-12)
        variances, directions = variances[keep], directions[:, keep]
        scale = 1.0 / np.sqrt(variances + shrinkage * variances.mean())  # (K,)
        return cls(mean.astype(np.float32), ((directions * scale) @ directions.T).astype(np.float32))

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        """(n, T) whitened vectors of unit length (zero rows stay zero)."""
        out = (vectors - self.mean) @ self.matrix
        out[~vectors.any(axis=1)] = 0.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"whiten_mean": self.mean, "whiten_matrix": self.matrix}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Whitening | None:
        """The whitening saved in a model's state (the keys are removed), or None when there is none."""
        mean, matrix = state.pop("whiten_mean", None), state.pop("whiten_matrix", None)
        return None if mean is None else cls(mean, matrix)


def catalogue_vectors(item_info: pl.DataFrame | None, *, encoder: str, columns: list[str] | None,
                      item_vectors: list[str], weight: float, whitening: float | None, progress: bool,
                      who: str) -> tuple[np.ndarray, Whitening | None]:
    """(n_items, T) content vector of every catalogue item for content model ``who``, and the
    whitening fitted on it (None when ``whitening``, the shrinkage, is None).

    Each vector is the unit text embedding (whitened when asked), then each extra modality's
    unit vector times ``weight`` (zero where a file has none for the item). The weight sets how
    much the extra cosine counts next to the text cosine.
    """
    text = encode_catalogue(item_info, model=encoder, columns=columns, progress=progress, who=who)
    white = None if whitening is None else Whitening.fit(text, whitening)
    ids = item_info["item"].to_list()
    views = [text if white is None else white(text)]
    views += [weight * load_item_vectors(path, ids) for path in item_vectors]
    return np.concatenate(views, axis=1), white


def text_query_vectors(texts: list[str], *, encoder: str, dim: int, whitening: Whitening | None) -> np.ndarray:
    """(n, dim) free-text queries in the items' content space: the text block through the model's
    whitening, zeros for the extra modalities."""
    from lmrec.content.encoder import TextEncoder

    text = TextEncoder(encoder, progress=False).encode(list(texts))
    if whitening is not None:
        text = whitening(text)
    return np.concatenate([text, np.zeros((len(text), dim - text.shape[1]), np.float32)], axis=1)


def new_item_vectors(item_info: pl.DataFrame, *, encoder: str, columns: list[str] | None, dim: int,
                     whitening: Whitening | None, who: str) -> np.ndarray:
    """(n_new, dim) content vectors of items added after training: the text embedding through the
    model's own whitening, and zeros for the extra modalities (their files were read at training time)."""
    text = encode_catalogue(item_info, model=encoder, columns=columns, progress=False, who=who)
    if whitening is not None:
        text = whitening(text)
    return np.concatenate([text, np.zeros((len(text), dim - text.shape[1]), np.float32)], axis=1)
