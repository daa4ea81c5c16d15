"""The social graph: user -> user relations kept with a run, and recommendations from a user's
neighbourhood blended with the model's (``lmrec train --social FILE``)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmrec.social.blend import (
    BUCKETS,
    SocialWeights,
    blend,
    bucket_of,
    history_matrix,
    neighbourhood_scores,
    social_scores,
    top_k,
    zscore,
)
from lmrec.social.graph import SocialReport, adjacency, id_pairs, load_pairs, read_social

SOCIAL_DIR = "social"


@dataclass
class Social:
    """A run's relations (original user ids) and the blend weights validation chose."""

    pairs: list[tuple[str, str]]
    weights: SocialWeights

    def save(self, path: str | Path) -> None:
        import polars as pl

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"user_id": [a for a, _ in self.pairs], "friend_id": [b for _, b in self.pairs]},
                     schema={"user_id": pl.String, "friend_id": pl.String}).write_parquet(path / "pairs.parquet")
        (path / "weights.json").write_text(json.dumps(self.weights.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path, pairs: bytes | None = None) -> Social:
        """``pairs``: the parquet file's bytes when the caller has them (decrypted)."""
        path = Path(path)
        return cls(load_pairs(io.BytesIO(pairs) if pairs is not None else path / "pairs.parquet"),
                   SocialWeights(**json.loads((path / "weights.json").read_text())))


def index_pairs(social: Social, users) -> np.ndarray:
    """(E, 2) user-index pairs of the relations whose both users are in ``users`` (a Vocabulary)."""
    pairs = [(users.index(a), users.index(b)) for a, b in social.pairs if a in users and b in users]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def blend_social(social: Social, model, dataset, idx: np.ndarray, histories, k: int, exclude_seen: bool,
                 top: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Fill, in ``top`` / ``scores`` (B, k), the rows of users with relations with the blend of the
    model and their neighbourhood (friends' whole histories), weighted by their history's bucket;
    the rows filled (the other rows are the caller's to fill)."""
    import torch

    adj = adjacency(index_pairs(social, dataset.users), dataset.interactions.n_users)
    rows = np.flatnonzero(np.asarray(adj.sum(axis=1)).ravel()[idx] > 0)
    if not len(rows):
        return rows
    x = history_matrix(dataset.interactions)
    counts = dataset.interactions.item_counts()
    tiebreak = 1e-6 * counts / max(1, counts.max())  # exact ties (no history): popular first
    w = social.weights
    for start in range(0, len(rows), 512):
        part = rows[start : start + 512]
        h = histories.take(part)
        with torch.inference_mode():
            m = model.score(h).float().numpy() + tiebreak  # (C, n_items)
        buckets = [bucket_of(int(n)) for n in h.lengths()]
        kinds = {(w.fof[b], w.sim[b]) for b in buckets}
        neighbours = {(f, sim): social_scores(adj, x, idx[part], f, h, sim) for f, sim in kinds}
        s = np.stack([neighbours[w.fof[b], w.sim[b]][r] for r, b in enumerate(buckets)])
        alpha = np.array([w.alpha[b] for b in buckets], dtype=np.float32)
        top[part], scores[part] = top_k(blend(m, s, alpha), [h[r] for r in range(len(part))], k, exclude_seen)
    return rows


__all__ = ["BUCKETS", "SOCIAL_DIR", "Social", "SocialReport", "SocialWeights", "adjacency", "blend", "bucket_of",
           "blend_social", "history_matrix", "id_pairs", "index_pairs", "neighbourhood_scores", "read_social",
           "social_scores", "top_k", "zscore"]
