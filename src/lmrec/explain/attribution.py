"""Why an item is recommended: which history events drove its score, and a reason in words.

Occlusion works for every model family because every model scores histories: an event's
contribution to item i is how much i's score drops when that one event is removed from the
history. All the leave-one-out histories of a request go through the model as one batch, so a
long history costs one batched forward, not one per event. Only the last ``max_events`` events
are tried (older events barely move a sequence model, and a Transformer reads a window anyway).

What a family knows is added beside it: for every contribution, how many training users have
both items (the co-occurrence count that ItemKNN and EASE are built from), for Transformer
models the last layer's attention on the item's events, and for content models the cosine of the
two items' content vectors and the title words they share (a new item is "similar to" the
history item closest in content).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch

from lmrec.data.sequences import Sequences
from lmrec.models.base import AttendsToHistory, HasContentVectors, Recommender

MAX_EVENTS = 50  # events tried per history (the most recent ones)
ROWS_PER_FORWARD = 1024  # leave-one-out histories scored per model call
STOPWORDS = frozenset("a an and at by for from in into is it of on or the to with vol edition".split())


@dataclass
class Contribution:
    item: int  # history item index
    weight: float  # the explained item's score drop without this item's events
    co_occurrence: int | None = None  # training users with both items
    attention: float | None = None  # Transformer models: the last layer's attention on this item's events
    content_similarity: float | None = None  # content models: cosine of the two items' content vectors
    shared_words: list[str] = field(default_factory=list)  # content models: title words in common


@dataclass
class Explanation:
    item: int
    reason: str
    source: str  # "history", "new-item", "popularity"
    contributions: list[Contribution]  # largest weight first


def occlusion(model: Recommender, histories: Sequences, items: list[np.ndarray],
              max_events: int = MAX_EVENTS) -> list[np.ndarray]:
    """Per history r: (len(items[r]), E_r) score drops of its items when each of its last E_r events
    (E_r = min(length, max_events)), oldest first, is removed."""
    rows, owners = [], []  # leave-one-out histories and the history each belongs to
    for r in range(len(histories)):
        h = histories[r]
        rows.append(h)
        owners.append((r, -1))
        for p in range(max(0, len(h) - max_events), len(h)):
            rows.append(np.delete(h, p))
            owners.append((r, p))
    base: dict[int, torch.Tensor] = {}
    drops: list[list[torch.Tensor]] = [[] for _ in range(len(histories))]
    with torch.inference_mode():
        for start in range(0, len(rows), ROWS_PER_FORWARD):
            scores = model.score(Sequences.from_lists(rows[start : start + ROWS_PER_FORWARD])).float()  # (C, n_items)
            for j, (r, p) in enumerate(owners[start : start + ROWS_PER_FORWARD]):
                s = scores[j, torch.from_numpy(np.asarray(items[r], dtype=np.int64))]  # (M_r,)
                if p < 0:
                    base[r] = s
                else:
                    drops[r].append(base[r] - s)
    return [torch.stack(d, dim=1).numpy() if d else np.zeros((len(items[r]), 0), np.float32)
            for r, d in enumerate(drops)]


def by_item(history: np.ndarray, drops: np.ndarray) -> list[tuple[int, float]]:
    """(history item, summed drop of its events) for one explained item, largest first.
    ``drops`` (E,) belongs to the last E events of ``history``."""
    tail = history[len(history) - len(drops):]
    total: dict[int, float] = {}
    for item, d in zip(tail.tolist(), drops.tolist(), strict=True):
        total[item] = total.get(item, 0.0) + d
    return sorted(total.items(), key=lambda kv: -kv[1])


def title_words(title: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", title.lower()) if len(w) > 1 and w not in STOPWORDS}


class Explainer:
    """Explanations of one model's recommendations on one catalogue.

    ``train`` (users x items, the events the model was trained on) gives the co-occurrence counts
    and which items are new (no training events); ``names`` (title, else original id, per item
    index) name items in the reasons.
    """

    def __init__(self, model: Recommender, train: sp.csr_matrix, names: list[str], *, top: int = 10) -> None:
        self.model, self.names, self.top = model, names, top
        self.train = train.tocsc()
        self.counts = np.asarray(train.sum(axis=0)).ravel()
        self.content = None  # (n_items, T) unit content vectors of content models
        if isinstance(model, HasContentVectors):
            v = np.asarray(model.content_vectors(), dtype=np.float32)
            self.content = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def explain(self, histories: Sequences, items: list[np.ndarray]) -> list[list[Explanation]]:
        """Per history, one explanation per item of ``items[r]``."""
        drops = occlusion(self.model, histories, items)
        attention = self.model.history_attention(histories) if isinstance(self.model, AttendsToHistory) else None
        out = []
        for r in range(len(histories)):
            att = dict(by_item(histories[r], attention[r])) if attention is not None else None
            out.append([self._one(histories[r], int(i), drops[r][j], att) for j, i in enumerate(items[r])])
        return out

    def _one(self, history: np.ndarray, item: int, drops: np.ndarray, attention: dict | None) -> Explanation:
        if len(history) == 0:
            n = int(self.counts[item]) if item < len(self.counts) else 0
            return Explanation(item, f"popular: {n:,} events in the training data", "popularity", [])
        contributions = [self._contribution(h, w, item) for h, w in by_item(history, drops)[: self.top]]
        for c in contributions:
            c.attention = None if attention is None else round(attention[c.item], 6)
        named = [self._name(c.item) for c in contributions if c.weight > 0][:2]
        if item >= len(self.counts) or self.counts[item] == 0:
            if self.content is not None:  # content models: the history item closest in content
                like = self._name(max(contributions, key=lambda c: c.content_similarity).item)
            else:
                like = named[0] if named else self._name(contributions[0].item)
            return Explanation(item, f"new item, similar to {like}", "new-item", contributions)
        if not named:
            return Explanation(item, "fits your history as a whole; no single event stands out", "history",
                               contributions)
        return Explanation(item, "because of " + " and ".join(named), "history", contributions)

    def _contribution(self, h: int, weight: float, item: int) -> Contribution:
        co = None
        if item < self.train.shape[1] and h < self.train.shape[1]:
            co = int(self.train[:, h].multiply(self.train[:, item]).nnz)
        shared, similarity = [], None
        if self.model.uses_item_content:
            shared = sorted(title_words(self.names[h]) & title_words(self.names[item]))
        if self.content is not None:
            similarity = round(float(self.content[h] @ self.content[item]), 6)
        return Contribution(int(h), float(weight), co_occurrence=co, shared_words=shared,
                            content_similarity=similarity)

    def _name(self, item: int) -> str:
        return f'"{self.names[item]}"'


def explanation_dict(e: Explanation, item_ids: list, titles: list[str]) -> dict:
    """JSON form with original ids: item_id, title, reason, source, contributions (largest first)."""
    return {"item_id": item_ids[e.item], "title": titles[e.item], "reason": e.reason, "source": e.source,
            "contributions": [{"item_id": item_ids[c.item], "title": titles[c.item], "weight": round(c.weight, 6),
                               "co_occurrence": c.co_occurrence, "attention": c.attention,
                               "content_similarity": c.content_similarity, "shared_words": c.shared_words}
                              for c in e.contributions]}
