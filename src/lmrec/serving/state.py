"""What the service holds in memory: the served model, every user's history, popularity.

Histories start from the run's data and replay the event store, so a restarted service
recommends exactly as before the restart. New events update a user's history at once; the
sequence model simply re-encodes the longer history at the next request.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

import numpy as np
import polars as pl

from lmrec.data.sequences import Sequences
from lmrec.errors import LmrecError
from lmrec.runs import Run
from lmrec.serving.retrieval import make_retriever
from lmrec.serving.store import EventStore


class UnknownIdError(LmrecError, KeyError):
    def __init__(self, field: str, value) -> None:
        self.field, self.value = field, value
        super().__init__(f"{field}: unknown id {value!r}")


@dataclass
class Recommendation:
    item_id: object
    score: float
    title: str


class ServiceState:
    def __init__(self, run: Run, store: EventStore, *, fallback: str = "popularity", retrieval: str = "auto") -> None:
        if fallback not in ("popularity", "empty"):
            raise LmrecError(f"fallback must be 'popularity' or 'empty', got {fallback!r}")
        self.run, self.store, self.fallback = run, store, fallback
        self.model = run.load_model()
        self.retrieval = retrieval
        self.retriever = make_retriever(self.model, retrieval)
        self.items = run.dataset.items
        # Path parameters and JSON bodies carry ids as text or numbers; match on the text form.
        self._index = {str(i): idx for idx, i in enumerate(self.items.ids)}
        self._lock = threading.Lock()
        self.item_counts = run.dataset.interactions.item_counts()
        self.titles = run.item_titles(np.arange(len(self.items)))  # kept in memory: read on every request
        for item_id, fields in store.items():  # items added over the API since the run was trained
            self._append_items([{"item_id": item_id, **json.loads(fields)}])
        seqs = run.dataset.interactions.sequences()
        self.histories: dict[str, list[int]] = {
            str(uid): seqs[u].tolist() for u, uid in enumerate(run.dataset.users.ids)}
        self.popular = np.argsort(-self.item_counts, kind="stable")
        self.events_replayed = 0
        for user_id, item_id, _, _ in store.all():
            self.histories.setdefault(user_id, []).append(self._index[item_id])
            self.events_replayed += 1

    def item_index(self, item_id, field: str = "item_id") -> int:
        idx = self._index.get(str(item_id))
        if idx is None:
            raise UnknownIdError(field, item_id)
        return idx

    def add_events(self, events: list[tuple[str, object, int, str | None]]) -> int:
        """Validate every item first, then store the batch durably, then update histories."""
        indices = [self.item_index(e[1], f"events[{j}].item_id") for j, e in enumerate(events)]
        self.store.append([(str(u), str(i), int(t), typ) for u, i, t, typ in events])
        with self._lock:
            for (user_id, _, _, _), idx in zip(events, indices, strict=True):
                self.histories.setdefault(str(user_id), []).append(idx)
        return len(events)

    def history(self, user_id: str) -> list[int] | None:
        with self._lock:
            h = self.histories.get(str(user_id))
            return list(h) if h is not None else None

    def _titles(self, idx: np.ndarray) -> list[str]:
        return [self.titles[i] for i in idx]

    def recommend_history(self, history: list[int], k: int, exclude_seen: bool = True) -> list[Recommendation]:
        top, scores = self.retriever.recommend(Sequences.from_lists([history]), k, exclude_seen=exclude_seen)
        keep = top[0] >= 0
        idx, sc = top[0][keep], scores[0][keep]
        return [Recommendation(i, float(s), t) for i, s, t in zip(self.items.decode(idx), sc, self._titles(idx),
                                                                   strict=True)]

    def recommend_user(self, user_id: str, k: int) -> tuple[list[Recommendation], str]:
        history = self.history(user_id)
        if history:
            return self.recommend_history(history, k), "model"
        if self.fallback == "empty":
            return [], "unknown-user"
        idx = self.popular[:k]
        return [Recommendation(i, float(self.item_counts[j]), t) for i, j, t in zip(self.items.decode(idx), idx,
                                                                          self._titles(idx), strict=True)], "popularity"

    def similar(self, item_id, k: int) -> list[Recommendation]:
        idx = self.item_index(item_id)
        top, scores = self.model.similar_items(np.array([idx]), k)
        keep = top[0] >= 0
        return [Recommendation(i, float(s), t) for i, s, t in zip(self.items.decode(top[0][keep]), scores[0][keep],
                                                                   self._titles(top[0][keep]), strict=True)]

    def item_info(self, item_id) -> dict:
        idx = self.item_index(item_id)
        info = self.run.dataset.item_info
        row = {} if info is None else {k: v for k, v in info.row(idx, named=True).items() if k != "item"}
        return {"item_id": self.items.ids[idx], **row,
                "training_events": int(self.item_counts[idx])}

    def _append_items(self, rows: list[dict]) -> None:
        info = self.run.dataset.item_info
        columns = info.columns[1:] if info is not None else sorted({k for r in rows for k in r} - {"item_id"})
        new = pl.DataFrame({"item": [self.items.coerce(r["item_id"]) for r in rows]}
                           | {c: [None if r.get(c) is None else str(r.get(c)) for r in rows] for c in columns})
        if info is not None:
            new = new.cast(dict(info.schema), strict=False)
        self.model.add_items(new)  # raises for models that cannot represent an item by content
        self.items.extend(new["item"].to_list())
        self.run.dataset.item_info = new if info is None else pl.concat([info, new], how="vertical_relaxed")
        self.titles = self.run.item_titles(np.arange(len(self.items)))
        start = len(self._index)
        self._index.update({str(i): start + j for j, i in enumerate(new["item"].to_list())})
        self.item_counts = np.concatenate([self.item_counts, np.zeros(len(rows), dtype=self.item_counts.dtype)])
        self.retriever = make_retriever(self.model, self.retrieval)

    def add_items(self, rows: list[dict]) -> int:
        """Make new items recommendable at once (content models), stored durably first."""
        if not self.model.uses_item_content:
            raise LmrecError(f"model {self.run.model_name!r} represents items by their events only; adding items "
                             "needs a content model (text-knn, sasrec-text)")
        for j, r in enumerate(rows):
            if str(r["item_id"]) in self._index:
                raise LmrecError(f"items[{j}].item_id: item {r['item_id']!r} already exists")
        with self._lock:
            self.store.add_items([(str(r["item_id"]), json.dumps({k: v for k, v in r.items() if k != "item_id"}))
                                  for r in rows])
            try:
                self._append_items(rows)
            except BaseException:
                # Unacknowledged: take the rows back out so a restart does not replay a failing item.
                self.store.delete_items([str(r["item_id"]) for r in rows])
                raise
        return len(rows)
