import numpy as np
import polars as pl
import pytest

from lmrec.data import load_dataset
from lmrec.data.processing import ProcessingConfig, k_core, process
from lmrec.data.readers import normalise_interactions, normalise_items
from lmrec.errors import DataValidationError


def events(rows):
    df = pl.DataFrame(rows, schema=["user_id", "item_id", "timestamp", "rating"], orient="row")
    return normalise_interactions(df, "test.csv")


def test_dedupe_modes():
    ev = events([(1, 10, 5, 1.0), (1, 10, 5, 1.0), (1, 10, 9, 1.0), (1, 11, 6, 1.0)])
    assert len(process(ev, ProcessingConfig(dedupe="exact")).interactions) == 3
    assert len(process(ev, ProcessingConfig(dedupe="first")).interactions) == 2
    assert len(process(ev, ProcessingConfig(dedupe="none")).interactions) == 4


def test_rating_threshold_turns_explicit_into_implicit():
    ev = events([(1, 10, 1, 5.0), (1, 11, 2, 2.0), (2, 10, 3, 4.0)])
    ds = process(ev, ProcessingConfig(rating_threshold=4))
    assert ds.items.ids == [10] and len(ds.interactions) == 2


def test_k_core_is_iterative():
    # Dropping items 30 and 50 drops user 4, which leaves item 40 with one event, whose removal
    # drops user 3, then item 60, then user 5: only a fixed-point loop gets there.
    seqs = {1: [10, 20], 2: [10, 20], 3: [30, 40, 60], 4: [40, 50], 5: [60, 10]}
    rows = [(u, i, t, 1.0) for u, items in seqs.items() for t, i in enumerate(items)]
    out = k_core(events(rows), 2, 2)
    assert sorted(set(out["item"].to_list())) == [10, 20]
    assert sorted(set(out["user"].to_list())) == [1, 2]


def test_vocab_is_sorted_and_independent_of_file_order():
    rows = [(5, 30, 1, 1.0), (2, 10, 2, 1.0), (9, 20, 3, 1.0)]
    a = process(events(rows))
    b = process(events(rows[::-1]))
    assert a.users.ids == b.users.ids == [2, 5, 9]
    assert a.items.ids == [10, 20, 30]
    np.testing.assert_array_equal(a.interactions.item, b.interactions.item)


def test_time_order_with_stable_ties_by_file_row():
    ev = events([(1, 30, 5, 1.0), (1, 10, 5, 1.0), (1, 20, 1, 1.0)])
    ds = process(ev)
    assert ds.items.decode(ds.interactions.item) == [20, 30, 10]  # t=1, then the t=5 tie in file order


def test_items_metadata_aligned_to_vocab_and_mismatch_errors():
    ev = events([(1, 10, 1, 1.0), (1, 20, 2, 1.0)])
    items = normalise_items(pl.DataFrame({"item_id": [20, 10, 99], "title": ["b", "a", "z"]}), "items.csv")
    ds = process(ev, items=items)
    assert ds.item_info["title"].to_list() == ["a", "b"]
    assert ds.n_items == 2
    wide = process(ev, ProcessingConfig(keep_unseen_items=True), items=items)
    assert wide.items.ids == [10, 20, 99] and wide.describe()["items_without_events"] == 1
    unrelated = normalise_items(pl.DataFrame({"item_id": ["x", "y"], "title": ["?", "?"]}), "items.csv")
    with pytest.raises(DataValidationError, match="no item id of the items file matches"):
        process(ev, items=unrelated, items_path="items.csv")


def test_load_dataset_from_files(events_csv, items_csv):
    ds = load_dataset(events_csv, items=items_csv)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (30, 20, 240)
    assert ds.item_info.columns == ["item", "title", "category"]
    d = ds.describe()
    assert d["history_length"]["median"] == 8 and d["users_by_history"]["6-20"] == 30


def test_describe_counts_events_tied_in_time():
    # User 1: t 1, 1, 2, 2 -> two events tie with the one before, the last one among them.
    # User 2: t 5, 6 -> none. User 3: one event, no previous one (and not a two-event user).
    ev = events([(1, 10, 1, 1.0), (1, 11, 1, 1.0), (1, 12, 2, 1.0), (1, 13, 2, 1.0),
                 (2, 10, 5, 1.0), (2, 11, 6, 1.0), (3, 10, 5, 1.0)])
    d = process(ev).describe()
    assert (d["tied_events"], d["tied_last_events"], d["users_with_two_or_more_events"]) == (2, 1, 2)


def test_nothing_left_is_an_error():
    with pytest.raises(DataValidationError, match="no events left"):
        process(events([(1, 10, 1, 1.0)]), ProcessingConfig(min_user_events=2))
