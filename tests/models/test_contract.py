"""The contract every model honours. New models join by being registered (see registry.py)."""

import numpy as np
import pytest
import torch

from lmrec.data import LabelRule, load_dataset
from lmrec.data.sequences import Sequences
from lmrec.errors import ConfigError, NotFittedError
from lmrec.models import Recommender, model_names
from tests.models.fast_configs import FAST, build


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from tests.conftest import make_events, make_items

    folder = tmp_path_factory.mktemp("contract")
    make_events().write_csv(folder / "events.csv")
    make_items().write_csv(folder / "items.csv")
    # Labelled (rating >= 4 is a like) so that models that learn interest fit too; the others ignore it.
    return load_dataset(folder / "events.csv", items=folder / "items.csv", labels=LabelRule(like_threshold=4))


@pytest.fixture(scope="module", params=model_names())
def fitted(request, dataset):
    model = build(request.param, FAST.get(request.param))
    model.attach_items(dataset.item_info)
    return model.fit(dataset.interactions)


def histories():
    return Sequences.from_lists([[0, 1, 2], [5], [], [3, 3, 4]])


def test_recommend_shapes_order_and_seen_exclusion(fitted):
    items, scores = fitted.recommend(histories(), k=5)
    assert items.shape == scores.shape == (4, 5)
    assert ((items >= 0) & (items < fitted.n_items)).all()
    assert (np.diff(scores, axis=1) <= 1e-6).all()
    for row, hist in zip(items, [[0, 1, 2], [5], [], [3, 3, 4]], strict=True):
        assert not set(row) & set(hist)
        assert len(set(row)) == 5


def test_recommend_can_include_seen(fitted):
    items, _ = fitted.recommend(histories(), k=fitted.n_items, exclude_seen=False)
    assert (items >= 0).all()


def test_batching_does_not_change_results(fitted):
    a_items, a_scores = fitted.recommend(histories(), k=5, batch_size=1)
    b_items, b_scores = fitted.recommend(histories(), k=5, batch_size=64)
    np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5, atol=1e-6)
    assert (a_items == b_items).mean() > 0.9  # equal up to ties


def test_k_beyond_catalogue_pads_with_minus_one(fitted):
    items, scores = fitted.recommend(Sequences.from_lists([[0, 1]]), k=fitted.n_items + 3)
    assert (items[0, -5:] == -1).all() and np.isneginf(scores[0, -5:]).all()
    assert (items[0, : fitted.n_items - 2] >= 0).all()


def test_similar_items_excludes_the_item_itself(fitted):
    items, scores = fitted.similar_items(np.array([0, 7]), k=4)
    assert items.shape == (2, 4)
    assert 0 not in items[0] and 7 not in items[1]


def test_fit_notes_are_lines_of_text(fitted):
    notes = fitted.fit_notes()
    assert isinstance(notes, list) and all(isinstance(n, str) and "\n" not in n for n in notes)


def test_save_load_round_trip_gives_identical_scores(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert type(loaded) is type(fitted) and loaded.config == fitted.config
    torch.testing.assert_close(loaded.score(histories()), fitted.score(histories()))


def test_unfitted_model_raises(fitted):
    fresh = type(fitted)()
    with pytest.raises(NotFittedError):
        fresh.recommend(histories())


def test_unknown_config_key_is_an_error(fitted):
    with pytest.raises(ConfigError, match="not_an_option"):
        type(fitted)({"not_an_option": 1})


def test_edge_parts_score_like_the_model(fitted):
    """What `lmrec export` turns into a graph computes the model's scores (in torch, no ONNX)."""
    from lmrec.models.base import EdgeExportable

    if not isinstance(fitted, EdgeExportable):
        pytest.skip(f"{fitted.name} declares no edge export")
    parts = fitted.edge_parts()
    rows = [[0, 1, 2], [5], [], [3, 3, 4]]
    width = max(len(r) for r in rows)
    tokens = torch.zeros(len(rows), width, dtype=torch.long)  # (B, L) left-padded, item + 1
    for b, r in enumerate(rows):
        if r:
            tokens[b, width - len(r):] = torch.tensor(r) + 1
    with torch.no_grad():
        query = parts.encoder(tokens, *(torch.from_numpy(t) for t in parts.tables.values()))  # (B, D)
    scores = query @ torch.from_numpy(parts.items).T  # (B, n_items)
    torch.testing.assert_close(scores, fitted.score(histories()).float(), rtol=1e-4, atol=1e-4)


def test_compressed_storage_round_trip_keeps_the_ranking(fitted, tmp_path):
    fitted.save(tmp_path / "m", storage="int8")
    loaded = Recommender.load(tmp_path / "m")
    a, _ = fitted.recommend(histories(), k=3)
    b, _ = loaded.recommend(histories(), k=3)
    assert (a == b).mean() >= 0.75


def test_accelerated_networks_make_tensors_on_their_inputs_device(fitted):
    """A model that declares ``Accelerated`` may train on a GPU: its network must not create a
    tensor on a fixed device. On the meta device any CPU tensor the forward pass makes is an
    error, which is what the same mistake is on CUDA (this machine has no GPU)."""
    import copy

    from lmrec.models.base import Accelerated

    if not isinstance(fitted, Accelerated):
        pytest.skip(f"{fitted.name} trains on the CPU only (not Accelerated)")
    net = copy.deepcopy(fitted.net).to("meta").train()
    tokens = torch.tensor([[0, 0, 3, 1], [2, 5, 4, 1]]).to("meta")  # (B, L) left-padded
    fused = getattr(fitted.config, "fusion", None) == "fused"  # its table gathers a data-dependent row set
    table = torch.randn(fitted.n_items + 1, fitted.net.item_table().shape[1], device="meta") if fused \
        else net.item_table()
    hidden = net(tokens, table)  # (B, L, D)
    assert hidden.device.type == "meta" and net(tokens, table, last_only=True).shape[1] == 1
    assert net.item_weights(table).device.type == "meta"
    if fused:  # the content-only table of the same network class is data-independent: check it too
        text_only = fitted._spawn(fitted.config.model_copy(update={"fusion": "text"}), fitted.training)
        text_only.warm = fitted.warm
        assert text_only.build_net(fitted.n_items).to("meta").item_table().device.type == "meta"
