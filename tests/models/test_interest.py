"""The interest model and its baselines on labelled fixtures with known answers."""

import numpy as np
import pytest
import torch

from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import TEST, VALID, interest_set, leave_one_out
from lmrec.evaluation import metrics as M
from lmrec.evaluation.interest import InterestValidator, evaluate_interest, predict
from lmrec.models.interest_baselines import BiasedMF, ItemMean, MajorityClass, UserMean, _UserMean
from tests.models.fast_configs import build


def taste_groups(n_users: int = 80, n_items: int = 16, per_user: int = 12, seed: int = 0) -> Interactions:
    """Half the users like even items and dislike odd ones, the other half the opposite; every item
    is liked as often as disliked, so only a user's own labels tell their taste."""
    rng = np.random.default_rng(seed)
    user, item, label = [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, per_user, replace=False)
        user += [u] * per_user
        item += items.tolist()
        label += [int((i % 2 == 0) == (u % 2 == 0)) for i in items]
    ts = np.tile(np.arange(per_user), n_users)
    return Interactions(np.array(user), np.array(item), ts, n_users, n_items, np.array(label, dtype=np.int8))


@pytest.fixture(scope="module")
def data():
    inter = taste_groups()
    return inter, leave_one_out(inter)


@pytest.fixture(scope="module")
def fitted(data):
    inter, split = data
    torch.manual_seed(0)
    model = build("interest", {"epochs": 40, "d_model": 32, "max_len": 20, "batch_size": 16, "lr": 5e-3,
                               "dropout": 0.0, "label_dropout": 0.0, "patience": None})
    return model.fit(inter.subset(split == 0), InterestValidator(inter, split))


def test_interest_model_reads_the_users_labels(data, fitted):
    inter, split = data
    s = interest_set(inter, split, TEST)
    p = predict(fitted, s)
    assert M.auc(p, s.targets) > 0.9
    assert M.accuracy(p, s.targets) > 0.8
    # Item means carry no signal here: the history's labels are what the model learnt to read.
    item_mean = ItemMean().fit(inter.subset(split == 0), interest_set(inter, split, VALID))
    assert M.auc(predict(item_mean, s), s.targets) < 0.65


def test_flipping_the_history_labels_flips_the_prediction(data, fitted):
    inter, split = data
    s = interest_set(inter, split, TEST)
    flipped = Sequences(s.history_labels.indptr, 1 - s.history_labels.values)
    p = fitted.predict_interest(s.histories, s.history_labels, s.candidates)
    q = fitted.predict_interest(s.histories, flipped, s.candidates)
    assert M.auc(q, s.targets) < 0.2 and np.corrcoef(p, q)[0, 1] < 0


def test_predictions_follow_the_candidates_order_and_batch_alone(fitted):
    hist, labels = Sequences.from_lists([[0, 2, 4], [1, 3]]), Sequences.from_lists([[1, 1, 0], [1, 0]])
    cands = Sequences.from_lists([[6, 7, 8], [9]])
    p = fitted.predict_interest(hist, labels, cands)
    assert p.shape == (4,) and ((p > 0) & (p < 1)).all()
    q = fitted.predict_interest(hist, labels, Sequences.from_lists([[8, 7, 6], [9]]))
    np.testing.assert_allclose(p[:3], q[2::-1], rtol=1e-5)
    alone = fitted.predict_interest(hist.take([1]), labels.take([1]), Sequences.from_lists([[9]]))
    np.testing.assert_allclose(alone, p[3:], rtol=1e-5)


def test_histories_without_labels_and_new_users_are_answered(fitted):
    hist, cands = Sequences.from_lists([[0, 1], []]), Sequences.from_lists([[2], [3, 4]])
    p = fitted.predict_interest(hist, Sequences.from_lists([[-1, -1], []]), cands)
    assert p.shape == (3,) and np.isfinite(p).all()


def test_user_mean_by_hand():
    labels = Sequences.from_lists([[1, 1, 0], [], [1, -1]])
    cands = Sequences.from_lists([[5], [5], [5, 6]])
    p = _UserMean(rate=0.5, a=1.0).predict_interest(None, labels, cands)
    np.testing.assert_allclose(p, [2.5 / 4, 0.5, 1.5 / 2, 1.5 / 2])  # -1 is not a label: (1 + 0.5) / (1 + 1)


def test_item_mean_majority_and_validation_choice(data):
    inter, split = data
    train = inter.subset(split == 0)
    valid = interest_set(inter, split, VALID)
    assert MajorityClass().fit(train, valid).rate == pytest.approx(train.label.mean())
    im = ItemMean().fit(train, valid)
    i = 3
    a = im.chosen["smoothing"]
    expected = (train.label[train.item == i].sum() + a * im.rate) / ((train.item == i).sum() + a)
    assert im.predict_interest(None, None, Sequences.from_lists([[i]]))[0] == pytest.approx(expected)
    assert UserMean().fit(train, valid).chosen["smoothing"] in (0.0, 1.0, 3.0, 10.0, 30.0, 100.0)


def test_biased_mf_learns_user_tastes_from_ids(data):
    inter, split = data
    train = inter.subset(split == 0)
    mf = BiasedMF(seed=0).fit(train, interest_set(inter, split, VALID))
    s = interest_set(inter, split, TEST)
    assert M.auc(predict(mf, s), s.targets) > 0.8
    # An unknown user gets the item side only (no user terms).
    p = mf.predict_interest(None, None, Sequences.from_lists([[1, 2]]), np.array([-1]))
    assert np.isfinite(p).all()


def test_biased_mf_also_learns_from_ratings_and_calibrates_them(data):
    import dataclasses

    from sklearn.linear_model import LogisticRegression

    from lmrec.models.interest_baselines import _labelled, logistic_fit

    inter, split = data
    assert BiasedMF(seed=0).fit(inter.subset(split == 0), interest_set(inter, split, VALID)).chosen["target"] == "labels"
    rng = np.random.default_rng(0)  # likes are rated 4-5, dislikes 1-3
    value = np.where(inter.label == 1, rng.integers(4, 6, len(inter)), rng.integers(1, 4, len(inter))).astype(np.float32)
    inter = dataclasses.replace(inter, value=value)
    train, valid, test = inter.subset(split == 0), interest_set(inter, split, VALID), interest_set(inter, split, TEST)
    mf = BiasedMF(seed=0).fit(train, valid)
    assert mf.chosen["target"] in ("labels", "ratings")
    rating_mf = mf._train(_labelled(train), valid, 16, 1e-2, "ratings")
    raw = rating_mf.scores(test.candidates, test.users)
    assert abs(raw.mean()) < 0.5 and M.auc(raw, test.targets) > 0.8  # standardised ratings, which rank likes first
    (a,), c = logistic_fit(rating_mf.scores(valid.candidates, valid.users)[:, None], valid.targets)
    rating_mf.scale = (a, c)
    p = predict(rating_mf, test)
    assert ((p > 0) & (p < 1)).all() and M.auc(p, test.targets) == pytest.approx(M.auc(raw, test.targets))
    # The calibration is the logistic regression of the validation labels on the scores.
    x = rating_mf.scores(valid.candidates, valid.users)[:, None]
    reference = LogisticRegression(tol=1e-10, max_iter=10_000).fit(x, valid.targets)
    np.testing.assert_allclose(p, reference.predict_proba(raw[:, None])[:, 1], atol=1e-3)
    # The refit trains the chosen settings for the chosen epochs on more events, keeping the scaling.
    again = mf.refit(inter)
    assert again.scale == mf._best.scale and again.best_epoch == mf.chosen["epochs"] and again.known.all()


def test_biased_mf_out_of_time_keeps_the_first_setting(data):
    inter, split = data
    mf = BiasedMF(seed=0, max_seconds=0).fit(inter.subset(split == 0), interest_set(inter, split, VALID))
    assert (mf.chosen["dim"], mf.chosen["l2"], mf.chosen["target"]) == (*BiasedMF.GRID[0], "labels")


def test_logistic_fit_matches_scikit_learn_on_several_features():
    from sklearn.linear_model import LogisticRegression

    from lmrec.models.interest_baselines import logistic_fit

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = (x @ [1.5, -1.0, 0.0] + rng.normal(size=300) > 0).astype(np.int64)
    w, c = logistic_fit(x, y)
    ref = LogisticRegression(tol=1e-10, max_iter=10_000).fit(x, y)
    np.testing.assert_allclose(w, ref.coef_[0], atol=1e-4)
    assert c == pytest.approx(ref.intercept_[0], abs=1e-4)


def test_evaluate_interest_reports_model_baselines_and_difference(data, fitted):
    inter, split = data
    out = evaluate_interest(fitted, inter, split, TEST)
    assert set(out["baselines"]) == {"majority", "user-mean", "item-mean", "biased-mf"}
    assert out["baselines"]["majority"]["auc"] == pytest.approx(0.5)
    vs = out["versus_best_baseline"]
    assert vs["auc_difference"] == pytest.approx(out["model"]["auc"] - out["baselines"][vs["baseline"]]["auc"])
    assert vs["standard_error"] >= 0
    assert out["model"]["n"] == (split == TEST).sum()


def test_validator_needs_both_classes():
    inter = taste_groups()
    inter.label[:] = 1
    with pytest.raises(ValueError, match="both"):
        InterestValidator(inter, leave_one_out(inter))


def test_ratings_train_an_auxiliary_head_and_the_loss_adds_it_by_hand(data):
    import dataclasses

    from lmrec.data.labels import rating_targets
    from lmrec.models.interest import RATING_WEIGHT, history_windows

    inter, split = data
    train = inter.subset(split == 0)
    options = {"epochs": 1, "d_model": 16, "max_len": 20, "batch_size": 16, "n_heads": 2, "n_layers": 1,
               "dropout": 0.0, "label_dropout": 0.0}
    plain = build("interest", options)
    plain.setup(train)
    assert plain.config.rating_weight == 0 and plain.net.rating is None  # no ratings: no head
    value = np.where(inter.label == 1, 4.0, 2.0).astype(np.float32) + (np.arange(len(inter)) % 2)  # 2, 3, 4, 5
    rated = dataclasses.replace(inter, value=value).subset(split == 0)
    z = rating_targets(rated)
    np.testing.assert_allclose([z.mean(), z.std()], [0, 1], atol=1e-6)
    torch.manual_seed(0)
    model = build("interest", options)
    model.setup(rated)
    assert model.config.rating_weight == RATING_WEIGHT and model.net.rating is not None
    # Windows carry the standardised ratings in step with the tokens (0 at BOS and padding).
    items = Sequences.from_lists([[3, 5]])
    ratings = Sequences(np.array([0, 2]), np.array([0.5, -1.5], np.float32))
    toks, labs, vals = history_windows(items, Sequences.from_lists([[1, 0]]), 4, 99, ratings)
    assert toks.tolist() == [[0, 0, 99, 4, 6]] and labs.tolist() == [[2, 2, 2, 1, 0]]
    assert vals.tolist() == [[0, 0, 0, 0.5, -1.5]]
    batch = model._batches(0)[0]
    tokens, labels, ratings = batch
    logits, predicted = model.net.logits_and_ratings(tokens[:, :-1], labels[:, :-1], tokens[:, 1:], causal=True)
    trained = (tokens[:, :-1] != 0) & (labels[:, 1:] != 2)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[trained], labels[:, 1:][trained].float()) \
        + RATING_WEIGHT * ((predicted[trained] - ratings[:, 1:][trained]) ** 2).mean()
    assert model._loss(batch).loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # A model saved before the option existed (its config says "auto") has no head to load.
    assert build("interest", options | {"rating_weight": "auto"}).build_net(inter.n_items).rating is None


def test_rating_targets_put_counts_on_a_log_scale_and_leave_stars_alone():
    import dataclasses

    from lmrec.data.labels import rating_targets, skewness
    from tests.conftest import interactions_from

    inter = interactions_from([[0, 1, 2, 3]] * 3, n_items=4)
    stars = np.array([1, 2, 3, 4, 5, 4, 3, 4, 5, 4, 3, 2], np.float32)
    assert skewness(np.array([1.0, 2.0, 3.0])) == 0.0
    assert skewness(np.array([0.0, 0.0, 0.0, 9.0])) == pytest.approx(1.1547, abs=1e-4)  # 27/4 / (27/16)^1.5
    z = rating_targets(dataclasses.replace(inter, value=stars))
    np.testing.assert_allclose(z, (stars - stars.mean()) / stars.std(), rtol=1e-5)
    plays = np.array([1, 2, 1, 3, 1, 1, 2, 1, 1, 4, 2, 300_000], np.float32)  # one heavy listener
    z = rating_targets(dataclasses.replace(inter, value=plays))
    logs = np.log1p(plays.astype(np.float64))
    np.testing.assert_allclose(z, (logs - logs.mean()) / logs.std(), rtol=1e-5)
    # The ordinary listeners keep a spread to learn from; raw, the heavy one would flatten them.
    raw = (plays - plays.mean()) / plays.std()
    assert z[:-1].std() > 1000 * raw[:-1].std()
