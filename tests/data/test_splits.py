import numpy as np
import pytest

from lmrec.data import load_dataset
from lmrec.data.splits import (
    HIDDEN,
    TEST,
    TRAIN,
    VALID,
    LeaveOneOutConfig,
    TemporalConfig,
    cold_items,
    eval_set,
    make_split,
    without_last_events,
)
from lmrec.pipeline import train_run
from tests.conftest import interactions_from


def test_leave_one_out_labels_known_answer():
    data = interactions_from([[1, 2, 3, 4], [5, 6], [7, 8, 9]], n_items=10)
    labels = make_split(data, LeaveOneOutConfig())
    assert labels.tolist() == [TRAIN, TRAIN, VALID, TEST, TRAIN, TRAIN, TRAIN, VALID, TEST]


def test_without_last_events_drops_each_users_latest_event():
    data = interactions_from([[1, 2, 3, 4], [5], [], [7, 8, 9]], n_items=10)
    rest = without_last_events(data).sequences()
    assert [rest[u].tolist() for u in range(4)] == [[1, 2, 3], [], [], [7, 8]]


def test_temporal_split_cuts_in_global_time():
    data = interactions_from([[1, 2, 3, 4], [5, 6]], n_items=10)  # days 0..3 and 0..1
    labels = make_split(data, TemporalConfig(valid_time=2 * 86_400, test_time=3 * 86_400))
    assert labels.tolist() == [TRAIN, TRAIN, VALID, TEST, TRAIN, TRAIN]
    with pytest.raises(ValueError, match="not both"):
        TemporalConfig(test_time=1, test_quantile=0.5)


@pytest.mark.parametrize("config", [LeaveOneOutConfig(), TemporalConfig(test_quantile=0.8, valid_quantile=0.6)])
def test_no_future_event_precedes_training_for_any_user(events_csv, config):
    data = load_dataset(events_csv).interactions
    labels = make_split(data, config)
    for stage in (VALID, TEST):
        for u in np.unique(data.user[labels == stage]):
            mine = data.user == u
            last_train = data.timestamp[mine & (labels == TRAIN)].max(initial=-1)
            assert last_train <= data.timestamp[mine & (labels == stage)].min()
    if isinstance(config, TemporalConfig):
        assert data.timestamp[labels == TRAIN].max() < data.timestamp[labels == TEST].min()


def test_eval_set_history_is_everything_before_the_stage():
    data = interactions_from([[1, 2, 3, 4], [5, 6]], n_items=10)
    labels = make_split(data, LeaveOneOutConfig())
    es = eval_set(data, labels, TEST)
    assert es.users.tolist() == [0]
    assert es.histories[0].tolist() == [1, 2, 3] and es.targets[0].tolist() == [4]
    es = eval_set(data, labels, VALID)
    assert es.histories[0].tolist() == [1, 2] and es.targets[0].tolist() == [3]


def test_pipeline_fits_evaluation_model_on_training_events_only(events_csv, tmp_path, monkeypatch):
    from lmrec.models.baselines import Popularity

    fitted = []
    original_fit = Popularity.fit

    def spy_fit(self, train, valid=None, time_budget_s=None):
        fitted.append(train)
        return original_fit(self, train, valid, time_budget_s=time_budget_s)

    monkeypatch.setattr(Popularity, "fit", spy_fit)
    train_run(events_csv, "pop", tmp_path / "run", log=lambda *_: None)
    data = load_dataset(events_csv).interactions
    labels = make_split(data, LeaveOneOutConfig())
    eval_fit, refit = fitted
    train_keys = set(zip(data.user[labels == TRAIN], data.timestamp[labels == TRAIN], strict=True))
    assert set(zip(eval_fit.user, eval_fit.timestamp, strict=True)) == train_keys
    assert len(refit) == len(data)  # the served model learns from every event


def test_cold_item_protocol_hides_items_everywhere_but_test(events_csv):
    data = load_dataset(events_csv).interactions
    plain = make_split(data, LeaveOneOutConfig())
    labels = make_split(data, LeaveOneOutConfig(cold_item_fraction=0.25, cold_item_seed=1))
    hidden_items = np.unique(data.item[labels == HIDDEN])
    assert hidden_items.size == 10  # two groups of 25% of 20 items
    test_group = np.unique(data.item[(labels == HIDDEN) & (plain == VALID)])
    valid_group = np.setdiff1d(hidden_items, test_group)
    assert test_group.size == valid_group.size == 5
    # The test group appears in no training, validation or history event, only as test targets.
    assert not np.isin(data.item[labels < TEST], test_group).any()
    assert np.isin(data.item[labels == TEST], test_group).any()
    assert not np.isin(eval_set(data, labels, TEST).histories.values, test_group).any()
    # The validation group has no training event, but keeps its validation and test events.
    assert not np.isin(data.item[labels == TRAIN], valid_group).any()
    assert ((labels == plain) | ~np.isin(data.item, valid_group) | (plain == TRAIN)).all()
    assert not np.isin(eval_set(data, labels, VALID).histories.values, valid_group).any()
    # So each stage has its cold bucket: validation's is made of the validation group; test's holds
    # the test group (and validation-group items that no validation event revealed).
    assert set(cold_items(labels, data, VALID)) == set(valid_group) & set(data.item[labels == VALID])
    assert set(test_group) & set(data.item[labels == TEST]) <= set(cold_items(labels, data, TEST)) <= set(hidden_items)


@pytest.mark.parametrize("tied_users", [0, 4])
def test_train_says_when_test_targets_tie_with_the_event_before(tmp_path, tied_users):
    # 5 users of 4 events; the first `tied_users` have their last two events at the same time.
    rows = [(u, 10 + t, t if not (u < tied_users and t == 3) else 2) for u in range(5) for t in range(4)]
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    lines = []
    train_run(path, "pop", tmp_path / "run", log=lines.append)
    said = [line for line in lines if "test events share their timestamp" in line]
    assert said == ([f"  {tied_users:,} users' test events share their timestamp with the event before: they keep "
                     "the input file's order (docs/benchmarks.md, \"Same-day ties on Beauty\")"] if tied_users else [])
