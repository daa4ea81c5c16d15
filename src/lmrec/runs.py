"""A run directory: everything needed to evaluate, recommend and serve without the input files.

    RUN_DIR/
      run.json             what was trained on what, with the full validated config and timings
      data/events.parquet  processed events (dense indices) with their split label (and like / dislike, value)
      data/users.json      user vocabulary (original ids in index order)
      data/items.json      item vocabulary
      data/items.parquet   item metadata in index order (when an items file was given)
      model/               the served model (config.json + weights.safetensors), trained on every event
      model-eval/          the model trained on the split's training part (only when refit is on)
      interests/           sparse interest codes of the served model (vector models; config interests)
      metrics.json, report.md, plots/   written by evaluation

A run is written to a temporary sibling directory and renamed into place when complete,
so a failed or interrupted ``train`` never leaves a half-written run or damages an old one.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lmrec.config import RunConfig, parse_config
from lmrec.data.processing import Dataset
from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.vocab import Vocabulary
from lmrec.errors import DataValidationError, RunError
from lmrec.explain.attribution import Explainer, explanation_dict
from lmrec.explain.interests import InterestCodes, describe_atoms, interests_of
from lmrec.models.base import InterestPredictor, Recommender
from lmrec.privacy import PseudonymVocabulary, crypto
from lmrec.privacy.dp import DP_DIR, DPPopularity
from lmrec.social import SOCIAL_DIR, Social, blend_social

RUN_FILE = "run.json"
INTERESTS_DIR = "interests"


@dataclass
class Run:
    path: Path
    meta: dict
    config: RunConfig
    dataset: Dataset
    labels: np.ndarray

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        if not (path / RUN_FILE).exists():
            raise RunError(f"{path} is not a run directory (no {RUN_FILE}); create one with `lmrec train`")
        meta = json.loads((path / RUN_FILE).read_text())
        privacy = meta["config"].get("privacy", {})
        key = crypto.load_data_key(privacy.get("data_key_file")) if privacy.get("encrypt") else None
        events = pl.read_parquet(io.BytesIO(crypto.read(path, "data/events.parquet", key)))
        users = Vocabulary(json.loads(crypto.read(path, "data/users.json", key))["ids"])
        items = Vocabulary.load(path / "data" / "items.json")
        info_path = path / "data" / "items.parquet"
        inter = Interactions(events["user"].to_numpy(), events["item"].to_numpy(), events["timestamp"].to_numpy(),
                             len(users), len(items), events["like"].to_numpy() if "like" in events.columns else None,
                             events["value"].to_numpy() if "value" in events.columns else None)
        dataset = Dataset(inter, users, items, pl.read_parquet(info_path) if info_path.exists() else None,
                          name=meta["data"]["name"])
        config = parse_config(meta["config"], str(path / RUN_FILE))
        if config.privacy.pseudonymise:  # people use their raw ids; the run holds only pseudonyms
            dataset.users = PseudonymVocabulary(users.ids, config.privacy)
        return cls(path, meta, config, dataset, events["label"].to_numpy())

    @property
    def model_name(self) -> str:
        return self.meta["model"]

    def load_model(self, which: str = "final") -> Recommender:
        """``final``: the served model; ``eval``: the one that never saw validation/test events."""
        sub = "model-eval" if which == "eval" and (self.path / "model-eval").exists() else "model"
        return Recommender.load(self.path / sub)

    def histories(self, users: np.ndarray) -> Sequences:
        """Every event of each user, in time order: the input at recommendation time."""
        return self.dataset.interactions.sequences().take(users)

    def item_titles(self, items: np.ndarray) -> list[str]:
        return item_titles(self.dataset.item_info, items)

    def popularity(self) -> np.ndarray:
        """(n_items,) what popularity fallbacks rank by: events per item, or under ``privacy.dp``
        the run's differentially private counts (users per item, rounded)."""
        counts = DPPopularity.load(self.path / DP_DIR)
        return self.dataset.interactions.item_counts() if counts is None else np.rint(counts).astype(np.int64)

    def social(self) -> Social | None:
        """The run's relations and blend weights (``train --social``), or None."""
        if not (self.path / SOCIAL_DIR).exists():
            return None
        key = crypto.load_data_key(self.config.privacy.data_key_file) if self.config.privacy.encrypt else None
        return Social.load(self.path / SOCIAL_DIR, pairs=crypto.read(self.path, f"{SOCIAL_DIR}/pairs.parquet", key))

    def recommend(self, users: list | None, k: int, exclude_seen: bool = True) -> pl.DataFrame:
        """``user_id, rank, item_id, score`` with original ids; ``users=None`` means every user.
        With a social graph, users with relations get the blend (score: the blended z-scores)."""
        vocab = self.dataset.users
        idx = np.arange(len(vocab)) if users is None else vocab.lookup(users, what="user id")
        model = self.load_model()
        histories = self.histories(idx)
        social = self.social()
        if social is None:
            top, scores = model.recommend(histories, k, exclude_seen=exclude_seen)
        else:  # users with relations get the blend; the model alone ranks for the others
            top, scores = np.full((len(idx), k), -1, dtype=np.int64), np.full((len(idx), k), -np.inf, dtype=np.float32)
            blended = blend_social(social, model, self.dataset, idx, histories, k, exclude_seen, top, scores)
            rest = np.setdiff1d(np.arange(len(idx)), blended)
            if len(rest):
                top[rest], scores[rest] = model.recommend(histories.take(rest), k, exclude_seen=exclude_seen)
        valid = top >= 0
        user_col = np.repeat(idx, k).reshape(-1, k)[valid]
        ranks = np.tile(np.arange(1, k + 1), (len(idx), 1))[valid]
        return pl.DataFrame({
            "user_id": pl.Series(vocab.decode(user_col)),
            "rank": ranks,
            "item_id": pl.Series(self.dataset.items.decode(top[valid])),
            "score": scores[valid],
        })

    def interest_model(self) -> InterestPredictor:
        model = self.load_model()
        if not isinstance(model, InterestPredictor) or self.dataset.interactions.label is None:
            raise RunError(f"the model of run {self.path} ({self.model_name}) does not predict like / dislike; "
                           "train one with `lmrec train --model interest` on data with ratings or event types")
        return model

    def predict_interest(self, user_ids: list, item_ids: list) -> tuple[np.ndarray, list[str | None]]:
        """P(like) for each (user, item) pair from the user's whole labelled history, and per pair
        None or why it was rejected (unknown user or item); rejected pairs get NaN."""
        model = self.interest_model()
        users, items = self.dataset.users, self.dataset.items
        errors: list[str | None] = []
        u_idx, i_idx = np.full(len(user_ids), -1), np.full(len(user_ids), -1)
        for j, (u, i) in enumerate(zip(user_ids, item_ids, strict=True)):
            if u is None or u not in users:
                errors.append(f"unknown user_id {u!r}")
            elif i is None or i not in items:
                errors.append(f"unknown item_id {i!r}")
            else:
                errors.append(None)
                u_idx[j], i_idx[j] = users.index(u), items.index(i)
        out = np.full(len(user_ids), np.nan)
        ok = np.flatnonzero(u_idx >= 0)
        if ok.size:
            order = ok[np.argsort(u_idx[ok], kind="stable")]  # pairs grouped by user, one row per user
            rows, first = np.unique(u_idx[order], return_index=True)
            candidates = Sequences(np.append(first, order.size).astype(np.int64), i_idx[order])
            inter = self.dataset.interactions
            p = model.predict_interest(inter.sequences().take(rows), inter.label_sequences().take(rows), candidates,
                                       rows)
            out[order] = p
        return out, errors

    def interest_codes(self) -> InterestCodes:
        if not (self.path / INTERESTS_DIR).exists():
            raise RunError(f"run {self.path} has no interest codes: its model ({self.model_name}) does not score by "
                           "user vectors, or it was trained with interests.atoms = 0 or by an lmrec before they existed")
        return InterestCodes.load(self.path / INTERESTS_DIR)

    def atoms(self, limit: int | None = None) -> list[dict]:
        """The served model's interest atoms, most used first (see :func:`describe_atoms`)."""
        n = len(self.dataset.items)
        return describe_atoms(self.interest_codes(), self.dataset.items.ids, self.item_titles(np.arange(n)), limit)

    def user_interests(self, user_id) -> list[dict]:
        """The user's active interest atoms (from their whole history), largest weight first."""
        codes = self.interest_codes()
        history = self.histories(self.dataset.users.lookup([user_id], what="user id"))[0]
        return interests_of(codes, self.load_model(), history.tolist(), self.dataset.items.ids,
                            self.item_titles(np.arange(len(self.dataset.items))))

    def onboarding(self, k: int = 20) -> pl.DataFrame:
        """A first slate for someone with no history (see :mod:`lmrec.coldstart.onboarding`):
        ``rank, item_id, title, events``."""
        from lmrec.coldstart.onboarding import first_slate, item_space

        inter = self.dataset.interactions
        counts = self.popularity()
        slate = first_slate(item_space(self.load_model(), inter.to_matrix()), counts, k, self.onboarding_setting())
        return pl.DataFrame({"rank": np.arange(1, len(slate) + 1), "item_id": pl.Series(self.dataset.items.decode(slate)),
                             "title": self.item_titles(slate), "events": counts[slate]})

    def onboarding_setting(self):
        """The first slate's setting chosen by ``train`` (None: runs from before the choice, DP runs)."""
        from lmrec.coldstart.onboarding import SlateSetting

        chosen = self.meta.get("onboarding")
        return SlateSetting.from_dict(chosen) if chosen else None

    def explainer(self, model: Recommender | None = None) -> Explainer:
        """Explanations of the served model (or ``model``) against every event of the run."""
        ids = self.dataset.items.ids
        names = [t or str(i) for t, i in zip(self.item_titles(np.arange(len(ids))), ids, strict=True)]
        return Explainer(model or self.load_model(), self.dataset.interactions.to_matrix(), names)

    def explain(self, user_id, item_ids: list | None = None, k: int = 10) -> list[dict]:
        """Why the user's top-k (or the given items) are recommended: one dict per item (see
        :func:`explanation_dict`), from the user's whole history."""
        history = self.histories(self.dataset.users.lookup([user_id], what="user id"))
        explainer = self.explainer()
        if item_ids is None:
            top, _ = explainer.model.recommend(history, k)
            items = top[0][top[0] >= 0]
        else:
            items = self.dataset.items.lookup(item_ids, what="item id")
        titles = self.item_titles(np.arange(len(self.dataset.items)))
        return [explanation_dict(e, self.dataset.items.ids, titles) for e in explainer.explain(history, [items])[0]]

    def similar(self, item_id, k: int) -> pl.DataFrame:
        items = self.dataset.items
        if item_id not in items:
            raise DataValidationError(f"unknown item id {item_id!r}; the catalogue has {len(items)} items, "
                                      f"e.g. {items.ids[:5]}")
        idx = items.index(item_id)
        top, scores = self.load_model().similar_items(np.array([idx]), k)
        valid = top[0] >= 0
        return pl.DataFrame({
            "rank": np.arange(1, k + 1)[valid],
            "item_id": pl.Series(items.decode(top[0][valid])),
            "score": scores[0][valid],
            "title": self.item_titles(top[0][valid]),
        })


def item_titles(info: pl.DataFrame | None, items: np.ndarray) -> list[str]:
    """A display name per item index: the metadata's title column (else its first text column), or ""."""
    if info is None:
        return [""] * len(items)
    col = "title" if "title" in info.columns else next((c for c in info.columns[1:] if info[c].dtype == pl.String), None)
    if col is None:
        return [""] * len(items)
    titles = info[col].to_list()
    return [titles[i] if i >= 0 and titles[i] is not None else "" for i in items]


def write_run(out: Path, *, meta: dict, dataset: Dataset, labels: np.ndarray, models: dict[str, Recommender],
              extra_files: dict[str, str] | None = None, artifacts: dict | None = None,
              overwrite: bool = False) -> Path:
    """Write a complete run to a temporary directory, then move it to ``out`` in one step."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        (tmp / "data").mkdir()
        inter = dataset.interactions
        likes = {} if inter.label is None else {"like": inter.label}
        values = {} if inter.value is None else {"value": inter.value}
        pl.DataFrame({"user": inter.user, "item": inter.item, "timestamp": inter.timestamp, "label": labels} | likes
                     | values) \
            .write_parquet(tmp / "data" / "events.parquet")
        dataset.users.save(tmp / "data" / "users.json")
        dataset.items.save(tmp / "data" / "items.json")
        if dataset.item_info is not None:
            dataset.item_info.write_parquet(tmp / "data" / "items.parquet")
        for sub, thing in (models | (artifacts or {})).items():  # anything with save(directory)
            thing.save(tmp / sub)
        for name, text in (extra_files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        (tmp / RUN_FILE).write_text(json.dumps(meta, indent=2, default=str))
        privacy = meta.get("config", {}).get("privacy", {})
        # Before the run becomes visible. The plaintext existed only in this temporary directory and
        # is overwritten, not securely erased: keep runs on an encrypted disk if that matters.
        if privacy.get("encrypt"):
            crypto.encrypt_files(tmp, crypto.load_data_key(privacy.get("data_key_file")))
        if out.exists():
            old = out.with_name(f".{out.name}.old-{tmp.name[-8:]}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
