"""The interest model's blend: the Transformer's logit, a biased factorisation and the user's
recent surprise, weighed by a logistic regression fitted on the validation events.

Alone, the Transformer ranks held-out events below a biased matrix factorisation of the ratings
(docs/benchmarks.md). It lacks two signals. The factorisation's user and item terms are learned
from every training event, where the Transformer reads a window of one history. And a user's
recent labels depart from what the factorisation expects in runs: someone who liked more than
expected in their last few events is in a generous session, and their next label follows (the
drift that timeSVD++'s day-specific user bias models). Surprise over the last k labelled events
is mean(label - P_mf(like)); it needs only the history's labels, so it also serves a history
posted to the service by a user the factorisation never saw (whose P_mf is then the item side).
"""

from __future__ import annotations

from typing import Self

import numpy as np

from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import InterestSet
from lmrec.evaluation import metrics as M
from lmrec.models.interest_baselines import BiasedMF, FittedMF, logistic_fit

RECENT = (5, 10, 20)  # labelled events each surprise feature averages over
FEATURES = ("factorisation", "transformer", *(f"surprise@{k}" for k in RECENT))
PREFIX = "blend."  # of the blend's arrays in the model's saved state


def surprise(p_history: np.ndarray, history_labels: Sequences, k: int) -> np.ndarray:
    """(U,): per row, the mean of label - p over its last ``k`` labelled events (0 with none);
    ``p_history`` (N,) is aligned with ``history_labels.values``."""
    y = history_labels.values.astype(np.float64)
    known = y >= 0
    rows = history_labels.row_ids()
    U = len(history_labels)
    totals = np.bincount(rows, weights=known, minlength=U)  # (U,) labelled events per row
    before = np.concatenate([[0.0], np.cumsum(totals)[:-1]])  # (U,) labelled events of earlier rows
    from_end = totals[rows] - (np.cumsum(known) - before[rows]) + 1  # (N,) 1 = the row's last labelled event
    last = known & (from_end <= k)
    sums = np.bincount(rows[last], weights=(y - p_history)[last], minlength=U)
    counts = np.bincount(rows[last], minlength=U)
    return sums / np.maximum(counts, 1)


class InterestBlend:
    def __init__(self, mf: FittedMF, weights: np.ndarray, intercept: float) -> None:
        self.mf, self.weights, self.intercept = mf, np.asarray(weights, dtype=np.float64), float(intercept)
        self.fitter: BiasedMF | None = None  # the factorisation's settings, for refit (not saved)
        self.validation_auc: dict[str, float] = {}  # what fit saw (the blend's own is in-sample)

    def features(self, transformer_logits: np.ndarray, histories: Sequences, history_labels: Sequences,
                 candidates: Sequences, users: np.ndarray | None) -> np.ndarray:
        """(N, len(FEATURES)) for the candidates; transformer_logits (N,) aligned with them."""
        p_history = self.mf.predict_interest(None, None, histories, users)  # (H,) the history events' P_mf(like)
        rows = candidates.row_ids()
        recent = [surprise(p_history, history_labels, k)[rows] for k in RECENT]
        return np.column_stack([self.mf.logits(candidates, users), transformer_logits, *recent])

    def logits(self, transformer_logits: np.ndarray, histories: Sequences, history_labels: Sequences,
               candidates: Sequences, users: np.ndarray | None) -> np.ndarray:
        x = self.features(transformer_logits, histories, history_labels, candidates, users)
        return x @ self.weights + self.intercept

    @classmethod
    def fit(cls, transformer_logits: np.ndarray, train: Interactions, valid: InterestSet, seed: int,
            max_seconds: float | None = None) -> Self:
        """The factorisation (BiasedMF: its settings chosen on ``valid``, as the baseline's are,
        within ``max_seconds``) and the weights, fitted on ``valid``'s events; transformer_logits
        (N,) are for those events."""
        fitter = BiasedMF(seed, max_seconds).fit(train, valid)
        blend = cls(fitter._best, np.zeros(len(FEATURES)), 0.0)
        x = blend.features(transformer_logits, valid.histories, valid.history_labels, valid.candidates, valid.users)
        blend.weights, blend.intercept = logistic_fit(x, valid.targets)
        blend.fitter = fitter
        blend.validation_auc = {"transformer": M.auc(transformer_logits, valid.targets),
                                "factorisation": fitter.valid_auc,
                                "blend (in-sample)": M.auc(x @ blend.weights, valid.targets)}
        return blend

    def refit(self, data: Interactions) -> InterestBlend:
        """The same blend over a factorisation retrained on ``data`` (the served model's events)."""
        if self.fitter is None:
            raise RuntimeError("a blend loaded from disk keeps no factorisation settings to refit with")
        return type(self)(self.fitter.refit(data), self.weights, self.intercept)

    def choices(self) -> dict[str, float | str]:
        """The weights and the factorisation's settings (those of a fit; a loaded blend has weights only)."""
        chosen = {f"weight {name}": round(float(w), 3) for name, w in zip(FEATURES, self.weights, strict=True)}
        if self.fitter is not None:
            chosen |= {f"mf {k}": v for k, v in self.fitter.chosen.items()}
        return chosen

    def describe(self) -> str:
        weights = ", ".join(f"{name} {w:+.2f}" for name, w in zip(FEATURES, self.weights, strict=True))
        seen = ", ".join(f"{name} {auc:.4f}" for name, auc in self.validation_auc.items())
        return f"interest blend fitted on the validation events: {weights}" + (f"; validation AUC {seen}" if seen else "")

    def state(self) -> dict[str, np.ndarray]:
        return self.mf.state(PREFIX + "mf.") | {f"{PREFIX}weights": np.append(self.weights, self.intercept)}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> InterestBlend | None:
        if f"{PREFIX}weights" not in state:
            return None  # saved without a blend
        w = state[f"{PREFIX}weights"]
        return cls(FittedMF.from_state(state, PREFIX + "mf."), w[:-1], w[-1])
