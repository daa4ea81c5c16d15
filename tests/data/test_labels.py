"""Like / dislike labels from rating thresholds and event-type maps, and their errors."""

import numpy as np
import polars as pl
import pytest
from pydantic import ValidationError

from lmrec.data import LabelRule, load_dataset
from lmrec.data.splits import TEST, LeaveOneOutConfig, interest_set, make_split
from lmrec.errors import DataValidationError


def _events(tmp_path, rows, name="events.csv"):
    path = tmp_path / name
    pl.DataFrame(rows).write_csv(path)
    return path


def test_threshold_labels_every_event_and_keeps_dislikes(tmp_path):
    path = _events(tmp_path, {"user_id": [1, 1, 1, 2], "item_id": [10, 11, 12, 10], "timestamp": [1, 2, 3, 1],
                              "rating": [5.0, 2.0, 4.0, 3.5]})
    ds = load_dataset(path, labels=LabelRule(like_threshold=4))
    assert len(ds.interactions) == 4  # a dislike is still an event
    # sorted by user, then time: user 1 rated 5, 2, 4; user 2 rated 3.5
    assert ds.interactions.label.tolist() == [1, 0, 1, 0]
    assert ds.interactions.label_sequences()[0].tolist() == [1, 0, 1]


def test_no_rule_means_no_labels(events_csv):
    assert load_dataset(events_csv).interactions.label is None


def test_event_type_map_leaves_unnamed_types_unlabelled(tmp_path):
    path = _events(tmp_path, {"user_id": [1, 1, 1], "item_id": [10, 11, 12], "timestamp": [1, 2, 3],
                              "event_type": ["purchase", "view", "return"]})
    ds = load_dataset(path, labels=LabelRule(event_labels={"purchase": "like", "return": "dislike"}))
    assert ds.interactions.label.tolist() == [1, -1, 0]


def test_threshold_without_a_rating_column_names_the_column(tmp_path):
    path = _events(tmp_path, {"user_id": [1], "item_id": [10], "timestamp": [1]})
    with pytest.raises(DataValidationError, match="rating") as err:
        load_dataset(path, labels=LabelRule(like_threshold=4))
    assert err.value.column == "rating"


def test_ratings_that_are_not_numbers_name_row_and_column(tmp_path):
    path = _events(tmp_path, {"user_id": [1, 1], "item_id": [10, 11], "timestamp": [1, 2], "rating": ["4", "great"]})
    with pytest.raises(DataValidationError, match="not a number") as err:
        load_dataset(path, labels=LabelRule(like_threshold=4))
    assert err.value.column == "rating" and err.value.row == 2


def test_event_type_the_file_does_not_have_is_an_error(tmp_path):
    path = _events(tmp_path, {"user_id": [1], "item_id": [10], "timestamp": [1], "event_type": ["view"]})
    with pytest.raises(DataValidationError, match="'purchse'") as err:
        load_dataset(path, labels=LabelRule(event_labels={"purchse": "like"}))
    assert err.value.column == "event_type"


def test_mapping_without_an_event_type_column_names_it(tmp_path):
    path = _events(tmp_path, {"user_id": [1], "item_id": [10], "timestamp": [1]})
    with pytest.raises(DataValidationError, match="event_type"):
        load_dataset(path, labels=LabelRule(event_labels={"buy": "like"}))


def test_rule_takes_one_way_and_known_values():
    with pytest.raises(ValidationError, match="not both"):
        LabelRule(like_threshold=4, event_labels={"buy": "like"})
    with pytest.raises(ValidationError):
        LabelRule(event_labels={"buy": "love"})


def test_interest_set_targets_only_labelled_events_of_the_stage(tmp_path):
    path = _events(tmp_path, {"user_id": [1] * 4 + [2] * 4, "item_id": [10, 11, 12, 13, 10, 11, 12, 13],
                              "timestamp": [1, 2, 3, 4] * 2,
                              "event_type": ["buy", "view", "buy", "view", "buy", "skip", "view", "skip"]})
    ds = load_dataset(path, labels=LabelRule(event_labels={"buy": "like", "skip": "dislike"}))
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    s = interest_set(ds.interactions, labels, TEST)
    # user 1's test event is a view (unlabelled): only user 2's skip is a target
    assert s.users.tolist() == [1] and s.targets.tolist() == [0]
    assert s.candidates[0].tolist() == [3] and s.histories[0].tolist() == [0, 1, 2]
    assert s.history_labels[0].tolist() == [1, 0, -1]
    np.testing.assert_array_equal(s.histories.lengths(), s.history_labels.lengths())
