"""What the service holds in memory: the served model and catalogue, every user's history, popularity.

Histories start from the run's data and replay the event store, so a restarted service
recommends exactly as before the restart. New events update a user's history at once; the
sequence model simply re-encodes the longer history at the next request.

Concurrency: writes (events, items) are serialised by one lock and applied in memory in the
order they are committed to the store, so replaying the store rebuilds exactly the served state.
The catalogue (model, retriever, vocabulary, titles) is never changed in place: adding items
builds a new one and swaps it in, so a request that picked up a catalogue uses one consistent
version from start to end and never waits for a writer.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from lmrec.coldstart.onboarding import first_slate, item_space
from lmrec.data.labels import DISLIKE, LIKE, UNLABELLED
from lmrec.data.sequences import Sequences
from lmrec.data.vocab import Vocabulary
from lmrec.errors import LmrecError
from lmrec.explain.attribution import Explainer, explanation_dict
from lmrec.explain.interests import InterestCodes, interests_of
from lmrec.models.base import HasContentVectors, InterestPredictor, Recommender
from lmrec.privacy import Pseudonymiser
from lmrec.runs import INTERESTS_DIR, Run, item_titles
from lmrec.serving.retrieval import make_retriever
from lmrec.serving.store import Cursor, EventStore
from lmrec.social import blend, bucket_of, neighbourhood_scores, top_k


class UnknownIdError(LmrecError, KeyError):
    def __init__(self, field: str, value) -> None:
        self.field, self.value = field, value
        super().__init__(f"{field}: unknown id {value!r}")


@dataclass
class Recommendation:
    item_id: object
    score: float
    title: str


@dataclass(frozen=True)
class Catalogue:
    """One consistent version of everything a request reads about items."""

    model: Recommender
    retriever: object
    items: Vocabulary
    index: dict[str, int]  # the text form of an original id -> item index (ids arrive as text or numbers)
    info: pl.DataFrame | None  # metadata rows in index order
    titles: list[str]
    folded: list[str]  # titles lowercased once per catalogue, for search
    counts: np.ndarray  # training events per item
    popular: np.ndarray  # item indices by count, most first

    @classmethod
    def build(cls, model: Recommender, items: Vocabulary, info: pl.DataFrame | None, counts: np.ndarray,
              retrieval: str) -> Catalogue:
        titles = item_titles(info, np.arange(len(items)))
        return cls(model, make_retriever(model, retrieval), items, {str(i): j for j, i in enumerate(items.ids)}, info,
                   titles, [t.lower() for t in titles], counts, np.argsort(-counts, kind="stable"))

    def with_items(self, rows: list[dict], retrieval: str) -> Catalogue:
        """A new catalogue with ``rows`` appended (content models represent them by their content)."""
        columns = self.info.columns[1:] if self.info is not None else sorted({k for r in rows for k in r} - {"item_id"})
        new = pl.DataFrame({"item": [self.items.coerce(r["item_id"]) for r in rows]}
                           | {c: [None if r.get(c) is None else str(r.get(c)) for r in rows] for c in columns})
        if self.info is not None:
            new = new.cast(dict(self.info.schema), strict=False)
        model = copy.deepcopy(self.model)
        model.add_items(new)  # raises for models that cannot represent an item by content
        items = Vocabulary(list(self.items.ids))
        items.extend(new["item"].to_list())
        info = new if self.info is None else pl.concat([self.info, new], how="vertical_relaxed")
        return Catalogue.build(model, items, info, np.concatenate([self.counts, np.zeros(len(rows), self.counts.dtype)]),
                               retrieval)


def _zscore(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean()) / x.std().clamp(min=1e-6)


class ServiceState:
    def __init__(self, run: Run, store: EventStore, *, fallback: str = "popularity", retrieval: str = "auto") -> None:
        if fallback not in ("popularity", "empty"):
            raise LmrecError(f"fallback must be 'popularity' or 'empty', got {fallback!r}")
        self.run, self.store, self.fallback, self.retrieval = run, store, fallback, retrieval
        # Pseudonymised runs: requests carry raw ids, memory and the store hold only their HMACs.
        self.pseudonyms = Pseudonymiser.of(run.config.privacy)
        self._write = threading.Lock()  # one writer at a time: store order == memory order
        self._histories_lock = threading.Lock()  # short: guards the history lists
        self.catalogue = Catalogue.build(run.load_model(), Vocabulary(list(run.dataset.items.ids)),
                                         run.dataset.item_info, run.popularity(), retrieval)
        inter = run.dataset.interactions
        seqs = inter.sequences()
        self.histories: dict[str, list[int]] = {
            str(uid): seqs[u].tolist() for u, uid in enumerate(run.dataset.users.ids)}
        # Like / dislike label of every history event, in step with ``histories`` (1, 0, -1 unlabelled);
        # posted events are labelled by their type through the run's data.event_labels.
        likes = inter.label_sequences() if inter.label is not None else None
        self.likes: dict[str, list[int]] = {
            uid: (likes[u].tolist() if likes is not None else [UNLABELLED] * len(h))
            for u, (uid, h) in enumerate(self.histories.items())}
        self._type_labels = {k: LIKE if v == "like" else DISLIKE for k, v in (run.config.data.event_labels or {}).items()}
        self._train_matrix = inter.to_matrix()  # co-occurrence counts and "new item" in explanations
        self._explainer: tuple[Catalogue, Explainer] | None = None
        self._onboarding: dict = {}
        self.codes = InterestCodes.load(run.path / INTERESTS_DIR) if (run.path / INTERESTS_DIR).exists() else None
        self.forgotten: set[str] = set()  # tombstones: their events in the run are hidden, a cold start
        self.social = run.social()
        self.friends: dict[str, set[str]] = {}
        # Value (play count, rating) of every history event, in step with ``histories``, for the
        # neighbourhood's votes; posted events carry none and count as the run's median event.
        self.values: dict[str, list[float]] = {}
        if self.social is not None:
            has = inter.value is not None and len(inter.value) > 0
            values = Sequences.from_sorted_groups(inter.user, inter.value, inter.n_users) if has else None
            self.values = {uid: (values[u].tolist() if has else [1.0] * len(h))
                           for u, (uid, h) in enumerate(self.histories.items())}
            self._live_value = float(np.nanmedian(inter.value)) if has else 1.0
        # Memory follows the store: everything stored so far is replayed now, and what any process
        # sharing the store writes later is applied before the next request (``sync``).
        self._cursor = Cursor()
        self.events_replayed = self.sync()
        for a, b in self.social.pairs if self.social else []:
            if a not in self.forgotten and b not in self.forgotten:
                self._relate(a, b)

    def sync(self) -> int:
        """Apply what was stored since this process last looked, its own writes included, in store
        order: items, then tombstones, relations and events. Several workers or replicas sharing
        one store therefore answer from the same histories: a request that follows an
        acknowledged write, on any of them, sees it. Returns the number of events applied."""
        seen = self._cursor
        changes = self.store.changes(seen)  # without the write lock: usually None
        if changes is None:
            return 0
        with self._write:
            if self._cursor != seen:  # another request applied some of it meanwhile
                changes = self.store.changes(self._cursor)
                if changes is None:
                    return 0
            cat = self.catalogue
            fresh = [{"item_id": i, **json.loads(f)} for i, f in changes.items if i not in cat.index]
            if fresh:  # items another process added over the API
                cat = self.catalogue = cat.with_items(fresh, self.retrieval)
            with self._histories_lock:
                for user_id in changes.tombstones:
                    self.histories.pop(user_id, None)
                    self.likes.pop(user_id, None)
                    self.values.pop(user_id, None)
                    for friend in self.friends.pop(user_id, set()):
                        self.friends.get(friend, set()).discard(user_id)
                    self.forgotten.add(user_id)
                for a, b in changes.relations:
                    if a not in self.forgotten and b not in self.forgotten:
                        self._relate(a, b)
                for user_id, item_id, _, typ in changes.events:
                    self.histories.setdefault(user_id, []).append(cat.index[item_id])
                    self.likes.setdefault(user_id, []).append(self._type_labels.get(typ, UNLABELLED))
                    if self.social is not None:
                        self.values.setdefault(user_id, []).append(self._live_value)
            self._cursor = changes.cursor
            return len(changes.events)

    @property
    def n_users(self) -> int:
        return len(self.histories)

    def item_index(self, item_id, field: str = "item_id", catalogue: Catalogue | None = None) -> int:
        idx = (catalogue or self.catalogue).index.get(str(item_id))
        if idx is None:
            raise UnknownIdError(field, item_id)
        return idx

    def uid(self, user_id) -> str:
        """The id a user has in this service's memory and store: their pseudonym, or the id as text."""
        return self.pseudonyms(user_id) if self.pseudonyms is not None else str(user_id)

    def add_events(self, events: list[tuple[str, object, int, str | None]]) -> int:
        """Validate every item first, then store the batch durably, then update histories, in
        store order (writers are serialised)."""
        events = [(self.uid(u), i, t, typ) for u, i, t, typ in events]
        with self._write:
            cat = self.catalogue  # items are only added under this lock: ids checked here stay valid
            indices = [self.item_index(e[1], f"events[{j}].item_id", cat) for j, e in enumerate(events)]
            self.store.append([(str(u), str(i), int(t), typ) for u, i, t, typ in events])
        self.sync()
        return len(indices)

    def labelled_history(self, user_id: str) -> tuple[list[int], list[int]] | None:
        user_id = self.uid(user_id)
        with self._histories_lock:
            h = self.histories.get(str(user_id))
            return (list(h), list(self.likes[str(user_id)])) if h is not None else None

    def _run_row(self, uid: str) -> int:
        """The user's index in the run's data (its models' per-user parameters), -1 when the run has
        no such user or they were forgotten."""
        users = self.run.dataset.users
        return users.index(uid) if uid in users and uid not in self.forgotten else -1

    def interest(self, history: list[int], likes: list[int], item_ids: list, user_id: str | None = None) -> list[float]:
        """P(like) of each item after ``history`` (item indices) with its labels; a ``user_id`` of
        the run's data also brings the model's per-user parameters (the blend's factorisation)."""
        cat = self.catalogue
        if not isinstance(cat.model, InterestPredictor):
            raise LmrecError(f"model {self.run.model_name!r} does not predict like / dislike; serve a run trained "
                             "with `lmrec train --model interest`")
        items = [self.item_index(i, f"item_ids[{j}]", cat) for j, i in enumerate(item_ids)]
        row = -1 if user_id is None else self._run_row(self.uid(user_id))
        p = cat.model.predict_interest(Sequences.from_lists([history]), Sequences.from_lists([likes]),
                                       Sequences.from_lists([items]), np.array([row]))
        return [float(x) for x in p]

    def onboarding(self, k: int) -> list[Recommendation]:
        """The run's first slate for someone with no history, computed once per catalogue and k."""
        cat = self.catalogue
        cached = self._onboarding  # one read: another request may replace it meanwhile
        if cached.get("catalogue") is not cat or cached.get("k") != k:
            vectors = item_space(cat.model, self._train_matrix)
            n = min(len(vectors), len(cat.counts))  # items added since training have no events: not popular
            cached = self._onboarding = {"catalogue": cat, "k": k,
                                         "slate": first_slate(vectors[:n], cat.counts[:n], k,
                                                              self.run.onboarding_setting())}
        idx = cached["slate"]
        return self._recommendations(cat, idx, cat.counts[idx].astype(float))

    def explainer(self, cat: Catalogue) -> Explainer:
        """The explainer of one catalogue version (rebuilt when items are added)."""
        cached = self._explainer
        if cached is None or cached[0] is not cat:
            names = [t or str(i) for t, i in zip(cat.titles, cat.items.ids, strict=True)]
            cached = self._explainer = (cat, Explainer(cat.model, self._train_matrix, names))
        return cached[1]

    def explain(self, history: list[int], item_ids: list, catalogue: Catalogue | None = None) -> list[dict]:
        """Why each item would be recommended after ``history`` (item indices); popularity for an
        empty history."""
        cat = catalogue or self.catalogue
        fields = ["item_id"] if len(item_ids) == 1 else [f"item_ids[{j}]" for j in range(len(item_ids))]
        items = np.array([self.item_index(i, f, cat) for f, i in zip(fields, item_ids, strict=True)], dtype=np.int64)
        found = self.explainer(cat).explain(Sequences.from_lists([history]), [items])[0]
        return [explanation_dict(e, cat.items.ids, cat.titles) for e in found]

    def user_interests(self, user_id: str) -> list[dict]:
        """The user's active interest atoms from their current history (posted events included)."""
        if self.codes is None:
            raise LmrecError(f"run {self.run.path} has no interest codes (model {self.run.model_name!r}); they come "
                             "with vector models (sasrec, sasrec-text, dnn) trained with interests.atoms > 0")
        history = self.history(user_id)
        if history is None:
            raise UnknownIdError("user_id", user_id)
        cat = self.catalogue
        return interests_of(self.codes, cat.model, history, cat.items.ids, cat.titles)

    def search(self, query: str, k: int) -> list[Recommendation]:
        """Items whose title holds every word of ``query`` (case-insensitive), most trained-on
        first (score: training events)."""
        words = query.lower().split()
        cat = self.catalogue
        hits = []
        for j in cat.popular:
            if all(w in cat.folded[j] for w in words):
                hits.append(j)
                if len(hits) == k:
                    break
        idx = np.array(hits, dtype=np.int64)
        return self._recommendations(cat, idx, cat.counts[idx].astype(np.float64))

    def history(self, user_id: str) -> list[int] | None:
        user_id = self.uid(user_id)
        with self._histories_lock:
            h = self.histories.get(str(user_id))
            return list(h) if h is not None else None

    @staticmethod
    def _recommendations(cat: Catalogue, idx: np.ndarray, scores: np.ndarray) -> list[Recommendation]:
        return [Recommendation(i, float(s), cat.titles[j]) for i, j, s in zip(cat.items.decode(idx), idx, scores,
                                                                               strict=True)]

    def recommend_history(self, history: list[int], k: int, exclude_seen: bool = True,
                          catalogue: Catalogue | None = None) -> list[Recommendation]:
        cat = catalogue or self.catalogue
        top, scores = cat.retriever.recommend(Sequences.from_lists([history]), k, exclude_seen=exclude_seen)
        keep = top[0] >= 0
        return self._recommendations(cat, top[0][keep], scores[0][keep])

    def recommend_query(self, history: list[int], query: str, k: int, exclude_seen: bool = True) -> list[Recommendation]:
        """Top-k for a free-text query (content models), blended with the history when there is one:
        the z-scored text match plus the z-scored model score, seen items excluded."""
        cat = self.catalogue
        if not isinstance(cat.model, HasContentVectors):
            raise LmrecError(f"model {self.run.model_name!r} has no text tower; free-text queries need a content "
                             "model (text-knn, sasrec-text)")
        content = torch.nn.functional.normalize(torch.from_numpy(cat.model.content_vectors()).float(), dim=1)
        q = torch.nn.functional.normalize(torch.from_numpy(cat.model.encode_text([query])).float(), dim=1)
        scores = _zscore((content @ q.T)[:, 0])  # (n_items,)
        if history:
            scores = scores + _zscore(cat.model.score(Sequences.from_lists([history]))[0].float())
        if exclude_seen and history:
            scores[torch.tensor(history)] = -torch.inf
        top = torch.topk(scores, min(k, len(scores)))
        keep = ~torch.isneginf(top.values)
        return self._recommendations(cat, top.indices[keep].numpy(), top.values[keep].numpy())

    def forget_user(self, user_id: str) -> dict:
        """The right to be forgotten: the user's stored events and relations are deleted and a
        tombstone hides their events in the run, at once and after restarts; their next request is
        a cold start. The trained weights are not changed (docs/privacy.md)."""
        raw, user_id = user_id, self.uid(user_id)
        with self._write:
            with self._histories_lock:
                known = user_id in self.histories or user_id in self.friends
            if not known and user_id not in self.forgotten:
                raise UnknownIdError("user_id", raw)
            row = self._run_row(user_id)
            hidden = len(self.run.histories(np.array([row]))[0]) if row >= 0 else 0
            deleted = self.store.forget(user_id, int(time.time()))
        self.sync()
        return {"user_id": raw, "events_deleted": deleted, "training_events_hidden": hidden}

    def _relate(self, a: str, b: str) -> None:
        self.friends.setdefault(a, set()).add(b)
        self.friends.setdefault(b, set()).add(a)

    def add_relation(self, user_id: str, friend_id: str) -> int:
        """Store a relation durably, then use it at once; returns the user's number of relations."""
        if self.social is None:
            raise LmrecError(f"run {self.run.path.name} was trained without --social: it has no blend weights for "
                             "neighbourhoods; train it with `lmrec train ... --social FILE`")
        user_id, friend_id = self.uid(user_id), self.uid(friend_id)
        if user_id == friend_id:
            raise LmrecError("friend_id: a user cannot be their own friend")
        self.store.add_relation(user_id, friend_id)
        self.sync()
        with self._histories_lock:
            return len(self.friends.get(user_id, ()))

    def _social_recommend(self, user_id: str, history: list[int], k: int, cat: Catalogue
                          ) -> list[Recommendation] | None:
        """The blend of the model with the user's neighbourhood, or None without relations."""
        if self.social is None:
            return None
        bucket = bucket_of(len(history))
        alpha, fof, sim = self.social.weights.combo(bucket)
        with self._histories_lock:  # copies: POST /social may add relations meanwhile
            friends = set(self.friends.get(str(user_id), ()))
            far = set().union(*(self.friends.get(f, set()) for f in friends)) - friends - {str(user_id)} \
                if fof else set()
        if not friends:
            return None
        social = neighbourhood_scores(self._voting(friends), self._voting(far), len(cat.items), fof, history, sim)
        with torch.inference_mode():
            model = cat.model.score(Sequences.from_lists([history])).float().numpy()  # (1, n_items)
        model = model + 1e-6 * cat.counts / max(1, cat.counts.max())  # exact ties (no history): popular first
        top, scores = top_k(blend(model, social[None], np.array([alpha], np.float32)), [history], k)
        keep = top[0] >= 0
        return self._recommendations(cat, top[0][keep], scores[0][keep])

    def _voting(self, users: set[str]) -> list[tuple[list[int], list[float]]]:
        """Each user's history and its events' values (copies), for ``neighbourhood_scores``."""
        with self._histories_lock:
            return [(list(self.histories.get(u, ())), list(self.values.get(u, ()))) for u in users]

    def recommend_user(self, user_id: str, k: int) -> tuple[list[Recommendation], str]:
        cat = self.catalogue
        history = self.history(user_id)
        social = self._social_recommend(self.uid(user_id), history or [], k, cat)
        if social is not None:
            return social, "social"
        if history:
            return self.recommend_history(history, k, catalogue=cat), "model"
        if self.fallback == "empty":
            return [], "unknown-user"
        idx = cat.popular[:k]
        return self._recommendations(cat, idx, cat.counts[idx].astype(float)), "popularity"

    def similar(self, item_id, k: int) -> list[Recommendation]:
        cat = self.catalogue
        top, scores = cat.model.similar_items(np.array([self.item_index(item_id, catalogue=cat)]), k)
        keep = top[0] >= 0
        return self._recommendations(cat, top[0][keep], scores[0][keep])

    def item_info(self, item_id) -> dict:
        cat = self.catalogue
        idx = self.item_index(item_id, catalogue=cat)
        row = {} if cat.info is None else {k: v for k, v in cat.info.row(idx, named=True).items() if k != "item"}
        return {"item_id": cat.items.ids[idx], **row, "training_events": int(cat.counts[idx])}

    def add_items(self, rows: list[dict]) -> int:
        """Make new items recommendable at once (content models), stored durably first."""
        if not self.catalogue.model.uses_item_content:
            raise LmrecError(f"model {self.run.model_name!r} represents items by their events only; adding items "
                             "needs a content model (text-knn, sasrec-text)")
        with self._write:
            cat = self.catalogue
            for j, r in enumerate(rows):
                if str(r["item_id"]) in cat.index:
                    raise LmrecError(f"items[{j}].item_id: item {r['item_id']!r} already exists")
            self.store.add_items([(str(r["item_id"]), json.dumps({k: v for k, v in r.items() if k != "item_id"}))
                                  for r in rows])
            try:
                new = cat.with_items(rows, self.retrieval)
            except BaseException:
                # Unacknowledged: take the rows back out so a restart does not replay a failing item.
                self.store.delete_items([str(r["item_id"]) for r in rows])
                raise
            self.catalogue = new  # one reference swap: readers see the old or the new catalogue, whole
        return len(rows)
