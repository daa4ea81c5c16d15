"""The interest model's blend (factorisation + recent surprise + Transformer) on fixtures with known answers."""

import numpy as np
import pytest
import torch

from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import TEST, VALID, interest_set, leave_one_out
from lmrec.evaluation import metrics as M
from lmrec.evaluation.interest import InterestValidator, evaluate_interest, predict
from lmrec.models import Recommender
from lmrec.models.interest_blend import FEATURES, InterestBlend, surprise
from tests.models.fast_configs import build
from tests.models.test_interest import taste_groups


def test_surprise_by_hand():
    labels = Sequences.from_lists([[1, 0, -1, 1], [], [-1], [0]])
    p = np.array([0.5, 0.2, 0.9, 0.7, 0.6, 0.4])
    # Row 0, last two labelled events: (0 - 0.2) and (1 - 0.7); the unlabelled one is skipped.
    np.testing.assert_allclose(surprise(p, labels, 2), [0.05, 0.0, 0.0, -0.4])
    np.testing.assert_allclose(surprise(p, labels, 5)[0], (0.5 - 0.2 + 0.3) / 3)
    np.testing.assert_allclose(surprise(p, labels, 1), [0.3, 0.0, 0.0, -0.4])


def moods(n_users: int = 200, n_items: int = 30, seed: int = 0) -> Interactions:
    """Each user's labels follow a mood that changes at events 5, 10 and 14 (each label agrees with
    it 9 times in 10); items say nothing. The last mood covers the last 4 training events and the
    held-out ones, so only the recent labels tell them."""
    rng = np.random.default_rng(seed)
    per_user = 20
    user, item, label = [], [], []
    for u in range(n_users):
        mood = np.repeat(rng.integers(0, 2, 4), [5, 5, 4, 6])  # (20,)
        agree = rng.random(per_user) < 0.9
        user += [u] * per_user
        item += rng.integers(0, n_items, per_user).tolist()
        label += np.where(agree, mood, 1 - mood).tolist()
    ts = np.tile(np.arange(per_user), n_users)
    return Interactions(np.array(user), np.array(item), ts, n_users, n_items, np.array(label, dtype=np.int8))


def test_recent_surprise_reads_a_users_mood_that_the_factorisation_averages_away():
    inter = moods()
    split = leave_one_out(inter)
    valid, test = interest_set(inter, split, VALID), interest_set(inter, split, TEST)
    nothing = np.zeros(valid.targets.size)  # a Transformer that says nothing
    blend = InterestBlend.fit(nothing, inter.subset(split == 0), valid, seed=0)
    weights = dict(zip(FEATURES, blend.weights, strict=True))
    assert weights["surprise@5"] > 1 and abs(weights["transformer"]) < 1e-6
    p_blend = blend.logits(np.zeros(test.targets.size), test.histories, test.history_labels, test.candidates,
                           test.users)
    p_mf = blend.mf.logits(test.candidates, test.users)
    assert M.auc(p_blend, test.targets) > M.auc(p_mf, test.targets) + 0.1
    assert "surprise@5" in blend.describe() and "validation AUC" in blend.describe()


OPTIONS = {"epochs": 10, "d_model": 16, "max_len": 20, "batch_size": 16, "n_heads": 2, "n_layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def fitted():
    inter = taste_groups()
    split = leave_one_out(inter)
    torch.manual_seed(0)
    model = build("interest", OPTIONS).fit(inter.subset(split == 0), InterestValidator(inter, split))
    return inter, split, model


def test_the_model_blends_on_validation_and_saves_the_blend(fitted, tmp_path):
    inter, split, model = fitted
    assert model.blend is not None and model.fit_notes() == [model.blend.describe()]
    chosen = evaluate_interest(model, inter, split, TEST)["model"]["chosen"]  # the report's row
    assert set(chosen) >= {f"weight {f}" for f in FEATURES} | {"mf dim", "mf l2", "mf target"}
    s = interest_set(inter, split, TEST)
    logits = model._transformer_logits(s.histories, s.history_labels, s.candidates)
    expected = model.blend.logits(logits, s.histories, s.history_labels, s.candidates, s.users)
    np.testing.assert_allclose(predict(model, s), 1 / (1 + np.exp(-expected)), rtol=1e-6)
    model.save(tmp_path / "m")
    again = Recommender.load(tmp_path / "m")
    np.testing.assert_allclose(predict(again, s), predict(model, s), rtol=1e-6)
    # The served model: the same weights over a factorisation of every event.
    final = model.refit(inter)
    assert final.blend.mf.known.all() and np.array_equal(final.blend.weights, model.blend.weights)


def test_blend_off_or_no_validation_is_the_transformer_alone(fitted):
    inter, split, _ = fitted
    s = interest_set(inter, split, TEST)
    torch.manual_seed(0)
    off = build("interest", OPTIONS | {"blend": "off"}).fit(inter.subset(split == 0), InterestValidator(inter, split))
    torch.manual_seed(0)
    unjudged = build("interest", OPTIONS).fit(inter.subset(split == 0))
    for model in (off, unjudged):
        assert model.blend is None and model.fit_notes() == []
        logits = model._transformer_logits(s.histories, s.history_labels, s.candidates)
        np.testing.assert_allclose(predict(model, s), 1 / (1 + np.exp(-logits)), rtol=1e-6)
