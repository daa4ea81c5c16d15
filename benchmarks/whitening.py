"""Benchmark: the whitening shrinkage of the title vectors, chosen on validation.

text-knn (no training, so each value costs one scoring pass) on Beauty, standard leave-one-out
protocol, its frozen settings (titles, recency decay 0.5), every shrinkage value scored on the
*validation* targets; the choice is the best validation NDCG@10. Test is read once, for the
chosen value only.

    .venv/bin/python benchmarks/whitening.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from lmrec.data import load_dataset  # noqa: E402
from lmrec.data.splits import TEST, TRAIN, VALID, LeaveOneOutConfig, make_split  # noqa: E402
from lmrec.evaluation import EvalConfig, evaluate  # noqa: E402
from lmrec.models import create_model  # noqa: E402

SHRINKAGE = [None, 0.0, 0.03, 0.1, 0.3, 1.0]


def main() -> None:
    ds = load_dataset("beauty")
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    train = ds.interactions.subset(labels == TRAIN)
    print(f"machine: {machine()}\n\n| whitening | valid NDCG@10 | valid NDCG@10 tail |\n|---|---|---|")
    scores, models = {}, {}
    for value in SHRINKAGE:
        model = create_model("text-knn", {"recency_decay": 0.5, "text_columns": ["title"], "whitening": value},
                             runtime={"progress": False})
        model.attach_items(ds.item_info)
        model.fit(train)
        s = evaluate(model, ds.interactions, labels, VALID, EvalConfig(ks=[10])).summary()
        scores[value], models[value] = s["overall"]["ndcg@10"], model
        print(f"| {value} | {s['overall']['ndcg@10']:.4f} | {s['by_popularity']['tail']['ndcg@10']:.4f} |", flush=True)
    best = max(scores, key=scores.get)
    s = evaluate(models[best], ds.interactions, labels, TEST, EvalConfig(ks=[10])).summary()
    print(f"\npicked on validation: {best}; its test NDCG@10 {s['overall']['ndcg@10']:.4f}, "
          f"tail {s['by_popularity']['tail']['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
