"""Augmentation only ever reads training events: no validation or test event, and no event of a
held-out cold item, reaches a view, the reversed model, the generator or a virtual user; virtual
users are never evaluated or served."""

import json

import numpy as np

from lmrec.augment import plan as plan_module
from lmrec.augment import prior as prior_module
from lmrec.augment.contrastive import ContrastiveHook
from lmrec.config import parse_config
from lmrec.data import load_dataset
from lmrec.data.splits import TEST, TRAIN, make_split
from lmrec.pipeline import train_run
from tests.conftest import make_events

MODEL = {"d_model": 16, "max_len": 10, "n_heads": 1, "n_layers": 1}
TRAINING = {"epochs": 2, "batch_size": 16, "refit": False, "time_budget": 1}


def pairs(users, items):
    return set(zip(np.asarray(users).tolist(), np.asarray(items).tolist(), strict=True))


def test_augmentation_sees_training_events_only(tmp_path, monkeypatch):
    path = tmp_path / "events.csv"
    make_events(n_users=60, n_items=40, length=8).write_csv(path)
    split = {"kind": "leave-one-out", "cold_item_fraction": 0.1, "cold_item_seed": 0}
    config = parse_config({"split": split, "model": MODEL, "training": TRAINING, "runtime": {"progress": False},
                           "augmentation": {"methods": ["contrastive", "prior", "gan"],
                                            "prior": {"max_history": 8, "k": 2}, "gan": {"users": 20}}})
    dataset = load_dataset(path)
    labels = make_split(dataset.interactions, config.split)
    data = dataset.interactions
    train_pairs = pairs(data.user[labels == TRAIN], data.item[labels == TRAIN])
    train_items = set(data.item[labels == TRAIN].tolist())
    assert len(train_items) < dataset.n_items  # the protocol did hold items out

    seen = {"prior": [], "gan": [], "views": [], "virtual": []}
    real_prior, real_gan = prior_module.fit_reversed_model, None
    from lmrec.augment import gan as gan_module

    real_gan = gan_module.virtual_users

    def spy_prior(train, *args, **kwargs):
        seen["prior"].append(pairs(train.user, train.item))
        return real_prior(train, *args, **kwargs)

    def spy_gan(real, *args, **kwargs):
        seen["gan"].append(set(real.values.tolist()))
        virtual, report = real_gan(real, *args, **kwargs)
        seen["virtual"].append(set(virtual.values.tolist()))
        return virtual, report

    real_view = ContrastiveHook.view

    def spy_view(self, tokens):
        seen["views"].append(set((tokens[tokens != 0] - 1).tolist()))
        return real_view(self, tokens)

    monkeypatch.setattr(prior_module, "fit_reversed_model", spy_prior)
    monkeypatch.setattr(gan_module, "virtual_users", spy_gan)
    monkeypatch.setattr(ContrastiveHook, "view", spy_view)
    # The augmenter's own input: the fit's training part, exactly.
    real_prepare = plan_module.Augmenter.prepare

    def spy_prepare(self, model, train, budget_s):
        assert pairs(train.user, train.item) == train_pairs and len(train) == int((labels == TRAIN).sum())
        return real_prepare(self, model, train, budget_s)

    monkeypatch.setattr(plan_module.Augmenter, "prepare", spy_prepare)

    result = train_run(path, "sasrec", tmp_path / "run", config, log=lambda *_: None)

    assert seen["prior"] and seen["gan"] and seen["views"] and seen["virtual"]
    # The reversed model trains on reversed training events (same user-item pairs).
    assert all(p <= train_pairs for p in seen["prior"])
    # Generator input, generated users and every view only hold items with training events.
    for group in ("gan", "virtual", "views"):
        assert all(s <= train_items for s in seen[group]), group
    # Virtual users are neither evaluated nor served: the run knows the real users only.
    run = json.loads((result.run_dir / "run.json").read_text())
    assert run["augmentation"]["gan"]["virtual_users"] > 0
    assert result.summary["n_users"] == len(np.unique(data.user[labels == TEST]))  # the real test users, no more
    users = json.loads((result.run_dir / "data" / "users.json").read_text())["ids"]
    assert users == dataset.users.ids and not any(str(u).startswith("virtual-") for u in users)
