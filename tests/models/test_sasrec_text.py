import numpy as np
import polars as pl
import pytest
import torch

from lmrec.data.processing import ProcessingConfig, process
from lmrec.data.readers import normalise_interactions, normalise_items
from lmrec.data.sequences import Sequences
from lmrec.data.splits import TRAIN, LeaveOneOutConfig, make_split
from lmrec.evaluation import Validator
from lmrec.models.sasrec_text import SASRecText, SASRecTextConfig, TextSASRecNet
from lmrec.models.textknn import recency_profile
from lmrec.training import losses
from tests.models.fast_configs import build


def fruit_and_tools():
    """Fruit users and tool users over 12 titled items; items 5 (a fruit) and 11 (a tool) have no events."""
    fruits = ["red apple", "green apple", "ripe banana", "fresh orange", "sweet mango", "juicy pear"]
    tools = ["steel hammer", "iron nails", "power drill", "wood saw", "metal wrench", "screwdriver set"]
    items = normalise_items(pl.DataFrame({"item_id": list(range(12)), "title": fruits + tools}), "items.csv")
    rows, rng = [], np.random.default_rng(0)
    for u in range(60):
        group = list(range(0, 5)) if u % 2 == 0 else list(range(6, 11))
        for t, i in enumerate(rng.permutation(group)):
            rows.append({"user_id": u, "item_id": int(i), "timestamp": t})
    return process(normalise_interactions(pl.DataFrame(rows), "events.csv"), ProcessingConfig(keep_unseen_items=True),
                   items=items)


def assert_cold_items_follow_the_history(model, ds):
    """The never-seen fruit must outrank the never-seen tool for a fruit history, and vice versa."""
    idx = ds.items
    scores = model.score(Sequences.from_lists([[idx.index(0), idx.index(1)], [idx.index(6), idx.index(7)]]))
    cold_fruit, cold_tool = idx.index(5), idx.index(11)
    assert scores[0, cold_fruit] > scores[0, cold_tool]
    assert scores[1, cold_tool] > scores[1, cold_fruit]


@pytest.mark.parametrize("fusion", ["fused", "text"])
def test_sasrec_text_recommends_an_item_nobody_has_touched(fusion):
    """Fruit users and tool users; one fruit and one tool have no events."""
    ds = fruit_and_tools()
    torch.manual_seed(0)
    model = build("sasrec-text", {"fusion": fusion, "epochs": 30, "d_model": 32, "max_len": 8,
                                         "lr": 5e-3, "dropout": 0.0, "progress": False})
    model.attach_items(ds.item_info)
    model.fit(ds.interactions)
    assert_cold_items_follow_the_history(model, ds)


def test_one_item_table_per_step_and_cold_items_left_out_of_the_softmax(monkeypatch):
    """The fused table (with its random ID dropout) is built once per step and serves both the
    input and the output side; items without training events are not negatives."""
    ds = fruit_and_tools()
    torch.manual_seed(0)
    model = build("sasrec-text", {"epochs": 1, "d_model": 16, "max_len": 8, "id_dropout": 0.5,
                                         "adapter_hidden": 16, "progress": False})
    model.attach_items(ds.item_info)
    model.fit(ds.interactions)
    warm = np.flatnonzero(ds.interactions.item_counts() > 0)
    assert model._softmax_items.tolist() == warm.tolist() and len(warm) == 10

    net, calls = model.net, []
    real = type(net).item_table
    monkeypatch.setattr(type(net), "item_table", lambda self: calls.append(1) or real(self))
    net.train()
    window = torch.from_numpy(np.array([[0, 1, 2, 3, 4, 5]]))  # tokens = item index + 1
    torch.manual_seed(1)
    loss = model._loss(window).loss
    assert len(calls) == 1
    # Same value by hand: one table, rows of the warm items only, targets re-indexed among them.
    torch.manual_seed(1)
    table = real(net)
    hidden = net(window[:, :-1], table)[0, 1:]  # positions with an input token
    expected = losses.full_softmax_ce(hidden @ table[1:][warm].T, torch.tensor([1, 2, 3, 4]))
    expected = expected * 4 / model._batches.positions_per_batch  # loss_norm epoch: 4 targets against the epoch's mean
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_text_knn_in_training_adds_the_channel_score_of_each_prefix_to_the_logits():
    """text_knn_train_weight: each trained position's logits get w * the text-knn score of the
    history up to that position, computed here with the inference code (recency_profile)."""
    ds = fruit_and_tools()
    torch.manual_seed(0)
    model = build("sasrec-text", {"epochs": 1, "d_model": 16, "max_len": 8, "adapter_hidden": 16,
                                         "text_knn_train_weight": 2.0, "text_knn_decay": 0.5,
                                         "loss_norm": "batch", "progress": False})
    model.attach_items(ds.item_info)
    model.fit(ds.interactions)
    warm = np.flatnonzero(ds.interactions.item_counts() > 0)
    net = model.net.eval()  # no dropout, no ID dropout: the same table twice
    window = torch.from_numpy(np.array([[0, 1, 2, 7, 8, 3]]))  # tokens = item index + 1
    loss = model._loss(window).loss
    table = net.item_table()
    hidden = net(window[:, :-1], table)[0, 1:]  # (4, D): positions with an input token
    prefixes = Sequences.from_lists([[0], [0, 1], [0, 1, 6], [0, 1, 6, 7]])
    knn = recency_profile(prefixes, net.unit_text, 50, 0.5) @ net.unit_text.T  # (4, n_items)
    logits = (hidden @ table[1:].T + 2.0 * knn)[:, warm]
    targets = torch.searchsorted(torch.from_numpy(warm), torch.tensor([1, 6, 7, 2]))
    assert loss.item() == pytest.approx(losses.full_softmax_ce(logits, targets).item(), rel=1e-5)


def test_extra_modality_vectors_carry_the_signal_when_text_does_not(tmp_path):
    """Every title is the same word, so only the 'image' vectors (fruit vs tool direction) can
    tell the two never-seen items apart."""
    ds = fruit_and_tools()
    ids = ds.item_info["item"].to_list()
    info = ds.item_info.with_columns(pl.lit("product").alias("title"))
    rng = np.random.default_rng(0)
    vecs = [np.r_[1.0 if int(i) < 6 else -1.0, rng.normal(0, 0.1, 7)] for i in ids]
    path = tmp_path / "image.parquet"
    pl.DataFrame({"item_id": ids, "vec": vecs}).write_parquet(path)
    torch.manual_seed(0)
    model = build("sasrec-text", {"epochs": 30, "d_model": 32, "max_len": 8, "lr": 5e-3, "dropout": 0.0})
    model.attach_items(info, [str(path)])
    assert model.text_vectors.shape == (12, 384 + 8)
    model.fit(ds.interactions)
    assert_cold_items_follow_the_history(model, ds)


def test_cached_inference_table_follows_weight_changes():
    ds = fruit_and_tools()
    torch.manual_seed(0)
    model = build("sasrec-text", {"epochs": 1, "d_model": 16, "max_len": 8, "adapter_hidden": 16,
                                         "progress": False})
    model.attach_items(ds.item_info)
    model.fit(ds.interactions)
    history = Sequences.from_lists([[0, 1]])
    before = model.score(history)
    assert torch.equal(model.score(history), before)  # served from the cache
    state = {k: v + 0.1 if k.startswith("adapter") else v for k, v in model.net.state_dict().items()}
    model.net.load_state_dict(state)  # e.g. the trainer restoring its best weights
    after = model.score(history)
    assert not torch.allclose(after, before)
    fresh = build("sasrec-text", model.config)
    fresh.n_items, fresh.text_vectors, fresh.warm = model.n_items, model.text_vectors, model.warm
    fresh._load_state({k: v.numpy() for k, v in state.items()})
    assert torch.allclose(fresh.score(history), after)


def test_text_knn_channel_adds_the_weighted_text_knn_score(tmp_path):
    """score = Transformer score + w * text-knn score, by hand; the weight survives save/load."""
    ds = fruit_and_tools()
    torch.manual_seed(0)
    common = {"d_model": 16, "max_len": 8, "adapter_hidden": 16, "epochs": 2, "progress": False}
    model = build("sasrec-text", common | {"text_knn_weight": 2.0})
    model.attach_items(ds.item_info)
    model.fit(ds.interactions)
    knn = build("text-knn", {"progress": False, "whitening": model.config.whitening})  # the same vectors
    knn.attach_items(ds.item_info)
    knn.fit(ds.interactions)
    histories = Sequences.from_lists([[0, 1, 2], [6, 7], []])
    alone = model.query_vectors(histories)[:, :16] @ model.net.item_weights(model._inference_table()).T  # (B, n)
    expected = alone + 2.0 * knn.score(histories)
    assert torch.allclose(model.score(histories), expected, atol=1e-4)
    model.save(tmp_path / "m")
    assert torch.allclose(type(model).load(tmp_path / "m").score(histories), expected, atol=1e-4)


def test_whitened_content_survives_save_load_and_reaches_new_items(tmp_path):
    ds = fruit_and_tools()
    torch.manual_seed(0)
    model = build("sasrec-text", {"d_model": 16, "max_len": 8, "adapter_hidden": 16, "epochs": 2,
                                         "whitening": 0.1, "text_knn_weight": 1.0, "progress": False})
    model.attach_items(ds.item_info)
    model.fit(ds.interactions)
    knn = build("text-knn", {"progress": False, "whitening": 0.1})
    knn.attach_items(ds.item_info)
    np.testing.assert_allclose(model.text_vectors, knn.vectors, atol=1e-6)  # one whitening for both models
    histories = Sequences.from_lists([[0, 1, 2], [6, 7]])
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    assert torch.allclose(loaded.score(histories), model.score(histories), atol=1e-5)
    loaded.add_items(ds.item_info.head(1).with_columns(pl.lit(99).alias("item")))
    np.testing.assert_allclose(loaded.text_vectors[-1], model.text_vectors[0], atol=1e-5)


def test_text_knn_weight_auto_is_the_best_on_validation():
    """Barely trained, the Transformer is near chance while the titles separate fruit from tools:
    validation must pick a positive weight, and 0 must stay the weight of the ID-only model."""
    ds = fruit_and_tools()
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    train, valid = ds.interactions.subset(labels == TRAIN), Validator(ds.interactions, labels)
    for fusion, positive in (("fused", True), ("id", False)):
        torch.manual_seed(0)
        model = build("sasrec-text", {"fusion": fusion, "d_model": 16, "max_len": 8, "epochs": 1, "lr": 1e-5,
                                             "adapter_hidden": 16, "progress": False})
        model.attach_items(ds.item_info)
        model.fit(train, valid)
        w = float(model.net.knn_weight)
        assert (w > 0) == positive
        if positive:
            assert model.knn_validation[w] == max(model.knn_validation.values()) > model.knn_validation[0.0]
            assert model.refit_config().text_knn_weight == w
            assert model.fit_notes()[0].endswith(f"picked {w:g}")
        else:
            assert model.fit_notes() == []


def test_text_knn_weight_lagged_is_searched_with_a_model_fitted_without_each_last_event(monkeypatch, tmp_path):
    """The served model is fitted on the training part; a second model of the same config, fitted on it minus
    every user's last event, runs the weight search on validation, and its pick is the served model's weight."""
    ds = fruit_and_tools()
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    train, valid = ds.interactions.subset(labels == TRAIN), Validator(ds.interactions, labels)
    fitted = []
    original = SASRecText.fit

    def spy(self, data, valid=None, time_budget_s=None):
        fitted.append((self, len(data), time_budget_s))
        return original(self, data, valid, time_budget_s=time_budget_s)

    monkeypatch.setattr(SASRecText, "fit", spy)
    torch.manual_seed(0)
    model = build("sasrec-text", {"d_model": 16, "max_len": 8, "epochs": 1, "lr": 1e-5, "adapter_hidden": 16,
                                         "progress": False, "text_knn_weight": "lagged",
                                         "checkpoint_dir": str(tmp_path)})
    model.attach_items(ds.item_info)
    model.fit(train, valid, time_budget_s=600)
    (outer, n_outer, budget), (judge, n_judge, rest) = fitted
    assert outer is model and n_outer == len(train) and budget == 600
    assert 550 < rest < 600  # the judge gets what the served model's fit left of the budget
    assert n_judge == len(train) - ds.interactions.n_users  # every user has training events
    assert judge.config.text_knn_weight == "auto" and judge.knn_validation == model.knn_validation
    assert judge.runtime.checkpoint_dir is None  # it must not resume from the served model's checkpoint
    w = float(model.net.knn_weight)
    assert w > 0 and w == float(judge.net.knn_weight)
    assert model.refit_config().text_knn_weight == w
    assert "without each user's last event" in model.fit_notes()[0]


@pytest.mark.parametrize("shrunk", [False, True])
def test_fused_table_by_hand_with_borrowed_ids(shrunk):
    """Rows without an ID of their own (no events, or dropped this step) get the mean ID of their
    content neighbours, stretched to the neighbours' mean length; the others their own ID, or with
    id_shrinkage a share m of it and 1 - m of the borrowed one."""
    torch.manual_seed(0)
    n, p = 40, 0.3
    warm = (torch.rand(n) > 0.25).float()
    if shrunk:
        warm = warm * torch.rand(n).clamp_min(0.1)
    cfg = SASRecTextConfig(d_model=8, max_len=4, adapter_hidden=8, cold_neighbours=3, id_dropout=p, dropout=0.1,
                           n_heads=2, block="pre_ln")
    net = TextSASRecNet(cfg,
                        n, torch.randn(n, 6), warm)
    ids = net.item_emb.weight
    for training in (False, True):
        net.train(training)
        torch.manual_seed(1)
        table = net.item_table()
        torch.manual_seed(1)
        keep = net.warm * (torch.rand_like(net.warm) >= p) if training else net.warm
        near = ids[net.neighbours]  # (n + 1, k, D)
        mean = near.mean(dim=1)
        borrowed = mean * (near.norm(dim=2).mean(dim=1) / mean.norm(dim=1).clamp_min(1e-8))[:, None]
        expected = net.adapter(net.text) + keep[:, None] * ids + (1 - keep)[:, None] * borrowed
        expected[0] = 0
        torch.testing.assert_close(table, expected)
        assert 0 < int((keep[1:] == 0).sum()) < n  # both kinds of row were checked


def test_id_shrinkage_gives_each_item_its_count_share_of_its_own_id():
    ds = fruit_and_tools()
    counts = ds.interactions.item_counts().astype(np.float32)
    model = build("sasrec-text", {"epochs": 1, "d_model": 8, "max_len": 8, "adapter_hidden": 8,
                                         "id_shrinkage": 20, "progress": False})
    model.attach_items(ds.item_info)
    model.fit(ds.interactions)
    np.testing.assert_allclose(model.warm, counts / (counts + 20))  # 30 events: 0.6; none: 0
    assert model._softmax_items.tolist() == np.flatnonzero(counts).tolist()
