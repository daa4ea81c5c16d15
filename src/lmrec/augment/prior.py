"""Pseudo-prior items for short histories (ASReP, Liu et al. 2021).

A SASRec trained on the training sequences read backwards learns what tends to come *before*
an event. For every history shorter than ``max_history`` it then writes ``k`` items, one at a
time, that plausibly preceded the first real event; the forward model trains on
``pseudo-prior items + real history``. Only training events are read, and only items with
training events are ever written (so a held-out cold item cannot enter through a guess).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from lmrec.augment.config import PriorConfig
from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import TRAIN, VALID
from lmrec.training.config import RuntimeConfig, TrainingConfig

GENERATION_BATCH = 1024


def reversed_interactions(seqs: Sequences, n_items: int) -> Interactions:
    """Every user's events in reverse order, as Interactions (timestamps count the reversed order)."""
    starts = np.repeat(seqs.indptr[:-1], seqs.lengths())
    ends = np.repeat(seqs.indptr[1:], seqs.lengths())
    pos = np.arange(seqs.values.size) - starts  # position within the row
    items = seqs.values[ends - 1 - pos]
    return Interactions(seqs.row_ids(), items, pos.astype(np.int64), len(seqs), n_items)


def reversed_holdout(rev: Interactions) -> np.ndarray:
    """Labels for the reversed model's early stopping: each user's last reversed event (the
    earliest real one: what the model is for) is validation when the user has >= 3 events."""
    labels = np.full(len(rev), TRAIN, dtype=np.int8)
    lengths = np.bincount(rev.user, minlength=rev.n_users)
    last = np.cumsum(lengths) - 1
    labels[last[lengths >= 3]] = VALID
    return labels


def fit_reversed_model(train: Interactions, model_config: dict, training: TrainingConfig, budget_s: float):
    """A SASRec on the reversed training sequences, early-stopped on predicting each user's first event."""
    from lmrec.evaluation.evaluator import Validator
    from lmrec.models.sasrec import SASRec

    rev = reversed_interactions(train.sequences(), train.n_items)
    labels = reversed_holdout(rev)
    model = SASRec(model_config, training=training.model_copy(update={"refit": False}),
                   runtime=RuntimeConfig(progress=False))
    validator = Validator(rev, labels) if (labels == VALID).any() else None
    return model.fit(rev.subset(labels == TRAIN), validator, time_budget_s=budget_s)


def generate_priors(model, seqs: Sequences, short: np.ndarray, k: int, allowed: np.ndarray) -> list[np.ndarray]:
    """For the rows ``short`` of ``seqs`` (forward order), k items each, earliest first.

    ``allowed`` (n_items,) bool: items that may be written. Greedy: the reversed model's top item
    that is neither in the history nor already written, appended to its input, k times."""
    rows = seqs.take(short)
    rev = [r[::-1] for r in (rows[i] for i in range(len(rows)))]
    written: list[list[int]] = [[] for _ in rev]
    blocked = torch.from_numpy(~allowed)
    for _ in range(k):
        for start in range(0, len(rev), GENERATION_BATCH):
            end = start + GENERATION_BATCH
            batch = [np.concatenate([r, np.asarray(w, dtype=np.int64)])
                     for r, w in zip(rev[start:end], written[start:end], strict=True)]
            hist = Sequences.from_lists(batch)
            with torch.inference_mode():
                s = model.score(hist).float()  # (B, n_items)
                s[:, blocked] = -torch.inf
                s[torch.from_numpy(hist.row_ids()), torch.from_numpy(hist.values)] = -torch.inf
                best = s.argmax(dim=1).numpy()
            for j, item in enumerate(best):
                if np.isfinite(float(s[j, item])):
                    written[start + j].append(int(item))
    return [np.asarray(w[::-1], dtype=np.int64) for w in written]  # written backwards in time


def augment_with_priors(train: Interactions, model_config: dict, training: TrainingConfig, config: PriorConfig,
                        budget_s: float) -> tuple[Sequences, dict]:
    """The training sequences with pseudo-prior items before every short history, and a summary."""
    t0 = time.perf_counter()
    seqs = train.sequences()
    model = fit_reversed_model(train, model_config, training, budget_s)
    lengths = seqs.lengths()
    short = np.flatnonzero((lengths >= 1) & (lengths < config.max_history))
    priors = generate_priors(model, seqs, short, config.k, train.item_counts() > 0)
    rows = [seqs[i] for i in range(len(seqs))]
    for i, p in zip(short, priors, strict=True):
        rows[i] = np.concatenate([p, rows[i]])
    st = model.train_state
    summary = {"users_augmented": int(short.size), "items_written": int(sum(len(p) for p in priors)),
               "reversed_model_epochs": st.epoch, "reversed_model_valid_ndcg@10": round(st.best_score, 4),
               "seconds": round(time.perf_counter() - t0, 1)}
    return Sequences.from_lists(rows), summary
