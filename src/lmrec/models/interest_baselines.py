"""What users try first for like / dislike prediction: majority class, user mean, item mean and a
biased matrix factorisation. Each is fitted on the training part and tunes its settings on the
validation stage's labelled events (AUC), never on test.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Self

import numpy as np
import torch
import torch.nn.functional as F

from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import InterestSet
from lmrec.evaluation import metrics as M
from lmrec.models.base import InterestPredictor

SMOOTHING = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0)  # prior strength (pseudo-events at the global like rate)


def _labelled(train: Interactions) -> Interactions:
    if train.label is None:
        raise ValueError("interest baselines need like / dislike labels")
    return train.subset(train.label >= 0)


class InterestBaseline(InterestPredictor):
    name: ClassVar[str]

    def __init__(self) -> None:
        self.chosen: dict[str, float] = {}  # settings picked on validation
        self.valid_auc = 0.5  # of the fitted predictor: what picks the best baseline
        self._best = None  # the predictor kept by _pick, which predict_interest answers with

    @abstractmethod
    def fit(self, train: Interactions, valid: InterestSet) -> Self: ...

    def _pick(self, options: list, make, valid: InterestSet):
        """Keep ``make(option)`` with the best validation AUC (and that AUC); returns its option."""
        best = None
        for option in options:
            predictor = make(option)
            p = predictor.predict_interest(valid.histories, valid.history_labels, valid.candidates, valid.users)
            score = M.auc(p, valid.targets) if 0 < valid.targets.sum() < valid.targets.size else 0.0
            if best is None or score > best[0]:
                best = (score, option, predictor)
        self.valid_auc, self._best = best[0], best[2]
        return best[1]

    def predict_interest(self, histories, history_labels, candidates, users=None) -> np.ndarray:
        return self._best.predict_interest(histories, history_labels, candidates, users)


class MajorityClass(InterestBaseline):
    """The training like rate for everyone (accuracy: the majority class)."""

    name = "majority"

    def fit(self, train: Interactions, valid: InterestSet) -> Self:
        self.rate = float(_labelled(train).label.mean())
        return self

    def predict_interest(self, histories, history_labels, candidates, users=None) -> np.ndarray:
        return np.full(candidates.values.size, self.rate)


class UserMean(InterestBaseline):
    """The user's like rate in the history, shrunk towards the global rate by ``a`` pseudo-events."""

    name = "user-mean"

    def fit(self, train: Interactions, valid: InterestSet) -> Self:
        self.rate = float(_labelled(train).label.mean())
        self.chosen = {"smoothing": self._pick(list(SMOOTHING), lambda a: _UserMean(self.rate, a), valid)}
        return self


class _UserMean:
    def __init__(self, rate: float, a: float) -> None:
        self.rate, self.a = rate, a

    def predict_interest(self, histories, history_labels: Sequences, candidates: Sequences, users=None) -> np.ndarray:
        rows = history_labels.row_ids()
        known = history_labels.values >= 0
        likes = np.bincount(rows[known], weights=history_labels.values[known], minlength=len(history_labels))
        n = np.bincount(rows[known], minlength=len(history_labels))
        per_user = (likes + self.a * self.rate) / np.maximum(n + self.a, 1e-9)
        per_user[n + self.a == 0] = self.rate
        return per_user[candidates.row_ids()]


class ItemMean(InterestBaseline):
    """The item's like rate in training, shrunk towards the global rate by ``a`` pseudo-events."""

    name = "item-mean"

    def fit(self, train: Interactions, valid: InterestSet) -> Self:
        data = _labelled(train)
        self.rate = float(data.label.mean())
        self.likes = np.bincount(data.item, weights=data.label, minlength=data.n_items)
        self.n = np.bincount(data.item, minlength=data.n_items)
        self.chosen = {"smoothing": self._pick(list(SMOOTHING), lambda a: _ItemMean(self, a), valid)}
        return self


class _ItemMean:
    def __init__(self, base: ItemMean, a: float) -> None:
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = (base.likes + a * base.rate) / (base.n + a)
        self.rates = np.where(base.n + a > 0, rates, base.rate)

    def predict_interest(self, histories, history_labels, candidates: Sequences, users=None) -> np.ndarray:
        return self.rates[candidates.values]


class BiasedMF(InterestBaseline):
    """logit P(like) = b + b_user + b_item + <p_user, q_item>, logistic loss with L2 on the used
    parameters, Adam, early stopping on validation AUC; width and L2 searched on validation.
    Users without training events get no user terms (the item side and the global bias)."""

    name = "biased-mf"
    GRID = ((16, 1e-3), (16, 1e-2), (16, 1e-1), (64, 1e-3), (64, 1e-2), (64, 1e-1))  # (dim, l2)
    MAX_EPOCHS, PATIENCE, BATCH, LR = 60, 4, 2048, 5e-3

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed

    def fit(self, train: Interactions, valid: InterestSet) -> Self:
        data = _labelled(train)
        self.known = np.zeros(data.n_users, dtype=bool)
        self.known[data.user] = True
        dim, l2 = self._pick(list(self.GRID), lambda option: self._train(data, valid, *option), valid)
        self.chosen = {"dim": dim, "l2": l2, "epochs": self._best.best_epoch}
        return self

    def _train(self, data: Interactions, valid: InterestSet, dim: int, l2: float) -> _MF:
        g = torch.Generator().manual_seed(self.seed)
        params = {"b": torch.zeros(1), "bu": torch.zeros(data.n_users), "bi": torch.zeros(data.n_items),
                  "p": torch.randn(data.n_users, dim, generator=g) * 0.01,
                  "q": torch.randn(data.n_items, dim, generator=g) * 0.01}
        for t in params.values():
            t.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=self.LR)
        u, i = torch.from_numpy(data.user), torch.from_numpy(data.item)
        y = torch.from_numpy(data.label.astype(np.float32))
        best, bad = _MF({k: v.detach().clone() for k, v in params.items()}, self.known, 0), 0
        best_score = -1.0
        for epoch in range(1, self.MAX_EPOCHS + 1):
            for idx in torch.randperm(len(y), generator=g).split(self.BATCH):
                bu, bi, pu, qi = params["bu"][u[idx]], params["bi"][i[idx]], params["p"][u[idx]], params["q"][i[idx]]
                logit = params["b"] + bu + bi + (pu * qi).sum(-1)  # (batch,)
                reg = l2 * ((pu**2).sum(-1) + (qi**2).sum(-1) + bu**2 + bi**2).mean()
                loss = F.binary_cross_entropy_with_logits(logit, y[idx]) + reg
                opt.zero_grad()
                loss.backward()
                opt.step()
            candidate = _MF({k: v.detach().clone() for k, v in params.items()}, self.known, epoch)
            p = candidate.predict_interest(None, None, valid.candidates, valid.users)
            score = M.auc(p, valid.targets)
            if score > best_score:
                best, best_score, bad = candidate, score, 0
            else:
                bad += 1
                if bad >= self.PATIENCE:
                    break
        return best


class _MF:
    def __init__(self, params: dict[str, torch.Tensor], known: np.ndarray, best_epoch: int) -> None:
        self.params, self.known, self.best_epoch = params, known, best_epoch

    def predict_interest(self, histories, history_labels, candidates: Sequences, users=None) -> np.ndarray:
        rows = candidates.row_ids()
        user = np.full(rows.size, -1) if users is None else np.asarray(users)[rows]
        known = (user >= 0) & self.known[np.maximum(user, 0)]
        u = torch.from_numpy(np.maximum(user, 0))
        i = torch.from_numpy(candidates.values)
        P = self.params
        with torch.no_grad():
            user_terms = P["bu"][u] + (P["p"][u] * P["q"][i]).sum(-1)  # (N,)
            logit = P["b"] + P["bi"][i] + user_terms * torch.from_numpy(known).float()
            return torch.sigmoid(logit).numpy().astype(np.float64)


BASELINES: tuple[type[InterestBaseline], ...] = (MajorityClass, UserMean, ItemMean, BiasedMF)
