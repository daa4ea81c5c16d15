"""What users try first for like / dislike prediction: majority class, user mean, item mean and a
biased matrix factorisation. Each is fitted on the training part and tunes its settings on the
validation stage's labelled events (AUC), never on test.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import ClassVar, Self

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit

from lmrec.data.labels import rating_targets
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

    def _pick(self, options: list, make, valid: InterestSet, deadline: float | None = None):
        """Keep ``make(option)`` with the best validation AUC (and that AUC); returns its option.
        Past ``deadline`` (a ``time.perf_counter()`` value) no further option is tried."""
        best = None
        for option in options:
            if best is not None and deadline is not None and time.perf_counter() > deadline:
                break
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
    """score = b + b_user + b_item + <p_user, q_item>, L2 on the used parameters, Adam, early
    stopping on validation AUC; width, L2 and the target searched on validation. Targets: the
    like / dislike labels (logistic loss: the score is the logit) and, where the events carry
    ratings, the ratings themselves (squared error on the standardised ratings of `rating_targets`,
    the classic rating-prediction MF, which learns from the whole scale: a 2 and a 3 are both
    dislikes but not alike); a rating score becomes P(like) by a logistic fit on the validation
    events (Platt scaling). Users without training events get no user terms (the item side and
    the global bias)."""

    name = "biased-mf"
    # (dim, l2), the settings validation chose most often first, so a fit cut short by max_seconds
    # has tried them (every measured fit chose the ratings, and L2 0.1)
    GRID = ((64, 1e-1), (16, 1e-1), (64, 1e-2), (16, 1e-2), (64, 1e-3), (16, 1e-3))
    MAX_EPOCHS, PATIENCE, BATCH, LR = 60, 4, 2048, 5e-3

    def __init__(self, seed: int = 0, max_seconds: float | None = None) -> None:
        super().__init__()
        self.seed, self.max_seconds = seed, max_seconds

    def fit(self, train: Interactions, valid: InterestSet) -> Self:
        """Settings searched in GRID order, over both targets where the events carry ratings; with
        ``max_seconds``, no setting is started after that many seconds (the first always runs)."""
        deadline = None if self.max_seconds is None else time.perf_counter() + self.max_seconds
        data = _labelled(train)
        targets = ["labels"]
        if rating_targets(data) is not None:  # what the interest model's rating head would learn from
            targets.insert(0, "ratings")
        options = [(dim, l2, target) for target in targets for dim, l2 in self.GRID]
        dim, l2, target = self._pick(options, lambda option: self._train(data, valid, *option), valid, deadline)
        self.chosen = {"dim": dim, "l2": l2, "target": target, "epochs": self._best.best_epoch}
        if target == "ratings":
            scores = self._best.scores(valid.candidates, valid.users)
            (a,), c = logistic_fit(scores[:, None], valid.targets)
            self._best.scale = (a, c)
        return self

    def refit(self, data: Interactions) -> FittedMF:
        """The chosen factorisation trained on ``data`` for the chosen number of epochs, without
        validation, keeping the rating scores' Platt scaling."""
        c = self.chosen
        mf = self._train(_labelled(data), None, c["dim"], c["l2"], c["target"], epochs=c["epochs"])
        mf.scale = self._best.scale
        return mf

    def _train(self, data: Interactions, valid: InterestSet | None, dim: int, l2: float, target: str = "labels",
               epochs: int | None = None) -> FittedMF:
        """Early stopping on ``valid``'s AUC, or exactly ``epochs`` epochs without it."""
        g = torch.Generator().manual_seed(self.seed)
        known = np.zeros(data.n_users, dtype=bool)
        known[data.user] = True
        ratings = target == "ratings"
        # The ratings as the interest model's rating head sees them (standardised; counts on a log
        # scale), so a few heavy listeners' raw play counts do not take the whole squared error.
        y = torch.from_numpy(rating_targets(data) if ratings else data.label.astype(np.float32))
        params = {"b": torch.zeros(1), "bu": torch.zeros(data.n_users),
                  "bi": torch.zeros(data.n_items), "p": torch.randn(data.n_users, dim, generator=g) * 0.01,
                  "q": torch.randn(data.n_items, dim, generator=g) * 0.01}
        for t in params.values():
            t.requires_grad_(True)
        opt = torch.optim.Adam(params.values(), lr=self.LR)
        u, i = torch.from_numpy(data.user), torch.from_numpy(data.item)
        loss_of = F.mse_loss if ratings else F.binary_cross_entropy_with_logits
        best, bad = FittedMF({k: v.detach().clone() for k, v in params.items()}, known, 0, ratings), 0
        best_score = -1.0
        for epoch in range(1, (epochs or self.MAX_EPOCHS) + 1):
            for idx in torch.randperm(len(y), generator=g).split(self.BATCH):
                bu, bi, pu, qi = params["bu"][u[idx]], params["bi"][i[idx]], params["p"][u[idx]], params["q"][i[idx]]
                score = params["b"] + bu + bi + (pu * qi).sum(-1)  # (batch,)
                reg = l2 * ((pu**2).sum(-1) + (qi**2).sum(-1) + bu**2 + bi**2).mean()
                loss = loss_of(score, y[idx]) + reg
                opt.zero_grad()
                loss.backward()
                opt.step()
            candidate = FittedMF({k: v.detach().clone() for k, v in params.items()}, known, epoch, ratings)
            if valid is None:
                best = candidate
                continue
            score = M.auc(candidate.scores(valid.candidates, valid.users), valid.targets)
            if score > best_score:
                best, best_score, bad = candidate, score, 0
            else:
                bad += 1
                if bad >= self.PATIENCE:
                    break
        return best


class FittedMF:
    """A fitted factorisation: P(like) = sigmoid(a * score + c), (a, c) = (1, 0) for a label MF (its
    score is the logit) and the Platt scaling fitted on validation for a rating MF."""

    def __init__(self, params: dict[str, torch.Tensor], known: np.ndarray, best_epoch: int,
                 ratings: bool = False) -> None:
        self.params, self.known, self.best_epoch, self.ratings = params, known, best_epoch, ratings
        self.scale = (1.0, 0.0)

    def scores(self, candidates: Sequences, users: np.ndarray | None) -> np.ndarray:
        """(N,) raw scores of ``candidates`` (a logit for a label MF, a standardised rating otherwise)."""
        rows = candidates.row_ids()
        user = np.full(rows.size, -1) if users is None else np.asarray(users)[rows]
        known = (user >= 0) & self.known[np.maximum(user, 0)]
        u = torch.from_numpy(np.maximum(user, 0))
        i = torch.from_numpy(candidates.values)
        P = self.params
        with torch.no_grad():
            user_terms = P["bu"][u] + (P["p"][u] * P["q"][i]).sum(-1)  # (N,)
            score = P["b"] + P["bi"][i] + user_terms * torch.from_numpy(known).float()
        return score.numpy().astype(np.float64)

    def logits(self, candidates: Sequences, users: np.ndarray | None) -> np.ndarray:
        a, c = self.scale
        return a * self.scores(candidates, users) + c

    def predict_interest(self, histories, history_labels, candidates: Sequences, users=None) -> np.ndarray:
        return expit(self.logits(candidates, users))

    def state(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": v.numpy() for k, v in self.params.items()} | {
            f"{prefix}known": self.known, f"{prefix}scale": np.array(self.scale),
            f"{prefix}meta": np.array([self.best_epoch, self.ratings])}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], prefix: str) -> FittedMF:
        epoch, ratings = state[f"{prefix}meta"].tolist()
        mf = cls({k: torch.from_numpy(state[f"{prefix}{k}"]) for k in ("b", "bu", "bi", "p", "q")},
                 state[f"{prefix}known"].astype(bool), int(epoch), bool(ratings))
        mf.scale = tuple(float(x) for x in state[f"{prefix}scale"])
        return mf


def logistic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights (D,) and intercept of P(y = 1) = sigmoid(x @ w + c) for x (N, D), by L2-regularised
    logistic regression (scikit-learn's default: the summed log-loss + |w|^2 / 2), so events that a
    feature separates perfectly do not push the probabilities to 0 and 1."""
    X = torch.from_numpy(np.asarray(x, dtype=np.float64))
    Y = torch.from_numpy(np.asarray(y, dtype=np.float64))
    wc = torch.zeros(X.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([wc], max_iter=500, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(X @ wc[:-1] + wc[-1], Y, reduction="sum") + (wc[:-1] ** 2).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    w = wc.detach().numpy()
    return w[:-1], float(w[-1])


BASELINES: tuple[type[InterestBaseline], ...] = (MajorityClass, UserMean, ItemMean, BiasedMF)
