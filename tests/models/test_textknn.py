import numpy as np
import polars as pl
import pytest

from lmrec.content.encoder import item_texts
from lmrec.data.processing import ProcessingConfig, process
from lmrec.data.readers import normalise_interactions, normalise_items
from lmrec.data.sequences import Sequences
from lmrec.errors import LmrecError
from tests.models.fast_configs import build

TITLES = ["red apple", "green apple", "apple pie", "steel hammer", "iron nails", "claw hammer", "garden hose"]


@pytest.fixture(scope="module")
def dataset():
    items = normalise_items(pl.DataFrame({"item_id": list(range(7)), "title": TITLES,
                                          "category": ["fruit"] * 3 + ["tools"] * 3 + ["garden"]}), "items.csv")
    # Item 5 ("claw hammer") has no events at all: it is only in the catalogue through the items file.
    events = normalise_interactions(pl.DataFrame({"user_id": [1, 1, 2, 2, 3], "item_id": [0, 1, 3, 4, 6],
                                                  "timestamp": [1, 2, 1, 2, 1]}), "events.csv")
    return process(events, ProcessingConfig(keep_unseen_items=True), items=items)


def test_item_texts_title_first_and_multi_values():
    info = pl.DataFrame({"item": [1], "genres": ["Comedy|Drama"], "title": ["Toy Story"], "year": [1995]})
    assert item_texts(info) == ["Toy Story. genres: Comedy, Drama"]
    assert item_texts(info, ["title"]) == ["Toy Story"]
    with pytest.raises(LmrecError, match="plot"):
        item_texts(info, ["plot"])


def test_recommends_by_meaning_including_items_without_events(dataset):
    model = build("text-knn", {"progress": False})
    model.attach_items(dataset.item_info)
    model.fit(dataset.interactions)
    ids = dataset.items
    top, _ = model.recommend(Sequences.from_lists([[ids.index(3), ids.index(4)], [ids.index(0)]]), k=2)
    assert ids.decode(top[0][:1]) == [5]  # tools history -> the never-seen "claw hammer"
    assert set(ids.decode(top[1])) == {1, 2}  # "red apple" -> the other apple items
    sim, _ = model.similar_items(np.array([ids.index(0)]), k=1)
    assert ids.decode(sim[0]) == [1]


def test_needs_item_metadata():
    with pytest.raises(LmrecError, match="--items"):
        build("text-knn").attach_items(None)


def test_extra_vectors_add_their_cosine_to_the_text_cosine(dataset, tmp_path):
    ids = dataset.item_info["item"].to_list()
    # Original item 0 points along x, item 3 along y, item 5 has no row (a zero vector).
    rows = {0: [1.0, 0.0], 3: [0.0, 2.0]}
    np.save(tmp_path / "attrs.npy", np.array([rows[k] for k in rows], dtype=np.float32))
    (tmp_path / "attrs.ids.txt").write_text("\n".join(map(str, rows)))
    plain = build("text-knn", {"progress": False, "recency_decay": 1.0})
    plain.attach_items(dataset.item_info)
    both = build("text-knn", {"recency_decay": 1.0})
    both.attach_items(dataset.item_info, [str(tmp_path / "attrs.npy")])
    assert both.vectors.shape == (len(ids), plain.vectors.shape[1] + 2)
    for m in (plain, both):
        m.fit(dataset.interactions)
    history = Sequences.from_lists([[ids.index(0)]])
    extra = (both.score(history) - plain.score(history))[0]
    expected = np.zeros(len(ids))
    expected[ids.index(0)] = 1.0  # cos(x, x); items 3 (orthogonal) and the rest (no vector) add 0
    np.testing.assert_allclose(extra.numpy(), expected, atol=1e-5)
    # Items added later have no vector in the file: zero extra block, the text alone.
    both.add_items(dataset.item_info.head(1).with_columns(pl.lit(99).alias("item")))
    assert both.vectors.shape == (len(ids) + 1, plain.vectors.shape[1] + 2)
    assert not both.vectors[-1, -2:].any()


def test_whitening_is_fitted_on_the_catalogue_kept_on_save_and_applied_to_new_items(dataset, tmp_path):
    model = build("text-knn", {"progress": False, "whitening": 0.1})
    model.attach_items(dataset.item_info)
    model.fit(dataset.interactions)
    plain = build("text-knn", {"progress": False})
    plain.attach_items(dataset.item_info)
    # Centred: the shared direction of all titles is gone, so the mean vector is far shorter than raw.
    assert np.linalg.norm(model.vectors.mean(0)) < 0.5 * np.linalg.norm(plain.vectors.mean(0))
    np.testing.assert_allclose(np.linalg.norm(model.vectors, axis=1), 1.0, atol=1e-5)
    history = Sequences.from_lists([[0, 1]])
    model.save(tmp_path / "m")
    loaded = type(model).load(tmp_path / "m")
    assert np.allclose(loaded.score(history).numpy(), model.score(history).numpy())
    # A new item with the text of item 0 gets item 0's whitened vector, not a re-fitted one.
    loaded.add_items(dataset.item_info.head(1).with_columns(pl.lit(99).alias("item")))
    np.testing.assert_allclose(loaded.vectors[-1], model.vectors[0], atol=1e-5)
