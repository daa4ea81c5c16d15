"""Validation screens of the interest model's settings (never a test number): each variant's best
validation AUC, and the validation AUC of the tuned baselines for reference.

    cd benchmarks && ../.venv/bin/python interest_screen.py ml-100k '[{}, {"seed": 1}, {"dropout": 0.5}]'
    cd benchmarks && ../.venv/bin/python interest_screen.py ml-latest-small '[{}]' --baselines

A variant is a flat dict of model and training options (``seed``: the run seed, default 0).
"""

from __future__ import annotations

import json
import sys
import time

import torch

from lmrec.data import load_dataset
from lmrec.data.splits import TRAIN, VALID, LeaveOneOutConfig, interest_set, make_split
from lmrec.evaluation.interest import InterestValidator, interest_metrics, predict
from lmrec.models import create_model
from lmrec.models.interest_baselines import BiasedMF, ItemMean, UserMean
from lmrec.training.config import TrainingConfig


def main() -> None:
    dataset, variants = sys.argv[1], json.loads(sys.argv[2])
    ds = load_dataset(dataset)
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    train = ds.interactions.subset(labels == TRAIN)
    validator = InterestValidator(ds.interactions, labels)
    if "--baselines" in sys.argv:
        valid = interest_set(ds.interactions, labels, VALID)
        for klass in (UserMean, ItemMean, BiasedMF):
            b = klass().fit(train, valid)
            print(klass.name, f"valid AUC {interest_metrics(predict(b, valid), valid.targets)['auc']:.4f}", b.chosen)
    for variant in variants:
        options = dict(variant)
        torch.manual_seed(options.pop("seed", 0))
        training = {k: options.pop(k) for k in list(options) if k in TrainingConfig.model_fields}
        t0 = time.perf_counter()
        model = create_model("interest", options, training=training, runtime={"progress": False}).fit(train, validator)
        st = model.train_state
        print(json.dumps(variant), f"valid AUC {st.best_score:.4f} at epoch {st.best_epoch}/{st.epoch}",
              f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
