"""Interest prediction (P(like)) evaluation: accuracy, AUC and log-loss on each user's held-out
labelled events, next to the baselines users try first, on the run's leakage-safe split.

The model reads each user's events before the stage (with their labels) and predicts the label
of every labelled event of the stage; baselines are fitted on the training part and tune their
settings on the validation stage, never on test.
"""

from __future__ import annotations

import numpy as np

from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import TRAIN, VALID, InterestSet, interest_set
from lmrec.evaluation import metrics as M
from lmrec.models.base import InterestPredictor, Recommender, ValidationSet


def interest_metrics(probabilities: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """n, like rate, accuracy (threshold 0.5), AUC (None with one class only) and log-loss."""
    both = 0 < targets.sum() < targets.size
    return {"n": int(targets.size), "like_rate": float(targets.mean()),
            "accuracy": M.accuracy(probabilities, targets), "auc": M.auc(probabilities, targets) if both else None,
            "log_loss": M.log_loss(probabilities, targets)}


def predict(predictor: InterestPredictor, s: InterestSet) -> np.ndarray:
    return predictor.predict_interest(s.histories, s.history_labels, s.candidates, s.users)


def auc_difference(p_a: np.ndarray, p_b: np.ndarray, s: InterestSet, resamples: int = 300,
                   seed: int = 0) -> tuple[float, float]:
    """AUC(a) - AUC(b) on ``s`` and its standard error by a paired bootstrap over users (a user's
    events stay together: they share a history)."""
    diff = M.auc(p_a, s.targets) - M.auc(p_b, s.targets)
    rng = np.random.default_rng(seed)
    events = Sequences(s.candidates.indptr, np.arange(s.targets.size))  # each user's event positions
    draws = []
    for _ in range(resamples):
        idx = events.take(rng.integers(0, len(events), len(events))).values
        y = s.targets[idx]
        if 0 < y.sum() < y.size:
            draws.append(M.auc(p_a[idx], y) - M.auc(p_b[idx], y))
    return float(diff), float(np.std(draws, ddof=1))


class InterestValidator(ValidationSet):
    """``validator(model) -> AUC`` on the validation stage's labelled events (what interest models
    early-stop on)."""

    def __init__(self, data: Interactions, labels: np.ndarray) -> None:
        self.set = interest_set(data, labels, VALID)
        if not 0 < self.set.targets.sum() < self.set.targets.size:
            raise ValueError("the validation stage needs both liked and disliked events to judge interest")

    def subsample(self, max_users: int) -> InterestValidator:
        return self  # one prediction per labelled event: cheap enough on every user

    def __call__(self, model: Recommender) -> float:
        return M.auc(predict(model, self.set), self.set.targets)


def evaluate_interest(model: InterestPredictor, data: Interactions, labels: np.ndarray, stage: int, *,
                      seed: int = 0) -> dict:
    """Metrics of ``model`` and of every baseline (fitted on the training part, tuned on
    validation) at ``stage``, with the model's AUC difference to the best baseline (validation
    picks which baseline is best)."""
    from lmrec.models.interest_baselines import BASELINES, BiasedMF

    test = interest_set(data, labels, stage)
    valid = interest_set(data, labels, VALID)
    train = data.subset(labels == TRAIN)
    p_model = predict(model, test)
    out = {"model": interest_metrics(p_model, test.targets) | {"chosen": model.interest_choices()}, "baselines": {}}
    best = None
    for klass in BASELINES:
        baseline = (klass(seed) if klass is BiasedMF else klass()).fit(train, valid)
        p = predict(baseline, test)
        out["baselines"][klass.name] = interest_metrics(p, test.targets) | {"chosen": baseline.chosen}
        if best is None or baseline.valid_auc > best[0]:
            best = (baseline.valid_auc, klass.name, p)
    if out["model"]["auc"] is not None and best is not None:
        diff, se = auc_difference(p_model, best[2], test)
        out["versus_best_baseline"] = {"baseline": best[1], "auc_difference": diff, "standard_error": se}
    return out


def format_interest(result: dict) -> str:
    """Terminal lines: the model and each baseline on the evaluated stage."""
    def line(name: str, m: dict) -> str:
        auc = "-" if m["auc"] is None else f"{m['auc']:.4f}"
        return f"  {name:<10} accuracy {m['accuracy']:.4f}  AUC {auc}  log-loss {m['log_loss']:.4f}"

    m = result["model"]
    lines = [f"interest prediction on {m['n']:,} held-out labelled events (like rate {m['like_rate']:.3f}):",
             line("model", m)]
    lines += [line(name, b) for name, b in result["baselines"].items()]
    if "versus_best_baseline" in result:
        v = result["versus_best_baseline"]
        lines.append(f"  AUC - {v['baseline']} (best baseline on validation): {v['auc_difference']:+.4f} "
                     f"+- {v['standard_error']:.4f} (paired bootstrap over users)")
    return "\n".join(lines)


def interest_markdown(result: dict) -> list[str]:
    """The report's interest section."""
    rows = {"model": result["model"]} | result["baselines"]
    lines = ["", "## Interest prediction", "",
             f"P(like) of each user's {result['model']['n']:,} held-out labelled events "
             f"(like rate {result['model']['like_rate']:.3f}); baselines fitted on the training part and tuned "
             "on validation.", "", "| predictor | accuracy | AUC | log-loss | chosen on validation |",
             "|---|---|---|---|---|"]
    for name, m in rows.items():
        auc = "-" if m["auc"] is None else f"{m['auc']:.4f}"
        chosen = ", ".join(f"{k} {v:g}" if isinstance(v, int | float) else f"{k} {v}"
                           for k, v in m.get("chosen", {}).items())
        lines.append(f"| {name} | {m['accuracy']:.4f} | {auc} | {m['log_loss']:.4f} | {chosen} |")
    if "versus_best_baseline" in result:
        v = result["versus_best_baseline"]
        lines += ["", f"AUC difference to {v['baseline']} (the best baseline on validation): "
                  f"{v['auc_difference']:+.4f} +- {v['standard_error']:.4f} (paired bootstrap over users)."]
    return lines
