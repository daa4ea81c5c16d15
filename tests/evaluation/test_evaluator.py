import json
import math

import numpy as np
import pytest
import torch

from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.splits import TEST, LeaveOneOutConfig, make_split
from lmrec.evaluation.evaluator import EvalConfig, evaluate, history_bucket_names, popularity_buckets
from lmrec.evaluation.report import write_report
from lmrec.models.base import Recommender
from tests.conftest import interactions_from


class FixedOrder(Recommender):
    """Always ranks items by index: 0 first. A model with a known ranking."""

    name = "fixed-order"

    def fit(self, train: Interactions, valid=None):
        self.n_items = train.n_items
        return self

    def _score(self, histories: Sequences) -> torch.Tensor:
        return -torch.arange(self.n_items, dtype=torch.float32).expand(len(histories), -1).clone()

    def _state(self):
        return {}

    def _load_state(self, state):
        pass


def setup():
    # u0 test target 1 with history {5, 0}; u1 test target 2 with history {4, 3}.
    data = interactions_from([[5, 0, 1], [4, 3, 2]], n_items=6)
    labels = make_split(data, LeaveOneOutConfig())
    return data, labels, FixedOrder().fit(data.subset(labels == 0))


def test_full_ranking_with_seen_items_excluded_known_answer():
    data, labels, model = setup()
    r = evaluate(model, data, labels, TEST, EvalConfig(ks=[1, 10]))
    # u0: ranking 1,2,3,4 -> target at rank 1; u1: ranking 0,1,2,5 -> target at rank 3.
    assert r.per_user["hr@1"].tolist() == [1.0, 0.0]
    assert r.per_user["ndcg@10"].tolist() == pytest.approx([1.0, 0.5])
    assert r.per_user["mrr@10"].tolist() == pytest.approx([1.0, 1 / 3])
    s = r.summary()
    assert s["overall"]["ndcg@10"] == pytest.approx(0.75)
    assert s["by_history"]["<=5"]["n_users"] == 2
    # Targets 1 and 2 have no events before the test stage: both users land in the cold bucket.
    assert s["by_popularity"]["cold"]["n_users"] == 2 and s["by_popularity"]["head"]["n_users"] == 0
    assert s["overall"]["coverage@1"] == pytest.approx(2 / 6)


def test_including_seen_items_changes_ranks():
    data, labels, model = setup()
    r = evaluate(model, data, labels, TEST, EvalConfig(ks=[10], exclude_seen=False))
    # u0: ranking 0,1 -> rank 2; u1: ranking 0,1,2 -> rank 3.
    assert r.per_user["ndcg@10"].tolist() == pytest.approx([1 / math.log2(3), 0.5])


class LastItemNext(FixedOrder):
    """Ranks item (last history item + 1) first, then by index: shows what the model was given."""

    def _score(self, histories: Sequences) -> torch.Tensor:
        s = super()._score(histories)
        for r in range(len(histories)):
            if len(histories[r]):
                s[r, (histories[r][-1] + 1) % self.n_items] = 10.0
        return s


def test_read_last_shows_part_of_the_history_but_excludes_all_of_it():
    data = interactions_from([[0, 4, 1, 2], [0, 5, 1, 3]], n_items=6)
    labels = make_split(data, LeaveOneOutConfig())
    model = LastItemNext().fit(data.subset(labels == 0))
    r = evaluate(model, data, labels, TEST, EvalConfig(ks=[2], read_last=1))
    assert r.history_length.tolist() == [1, 1]  # what the model read
    # Both read [1] -> 2 first (u0's target). u1 then has 0 next by index, seen but not shown: it is
    # excluded all the same, so u1's target 3 comes second.
    assert r.per_user["hr@2"].tolist() == [1.0, 1.0]
    assert r.per_user["ndcg@2"].tolist() == pytest.approx([1.0, 1 / math.log2(3)])


def test_suffixes():
    s = Sequences.from_lists([[1, 2, 3], [], [4]]).suffixes(2)
    assert [s[r].tolist() for r in range(3)] == [[2, 3], [], [4]]


def test_popularity_buckets_and_bucket_names():
    counts = np.array([10, 0, 3, 7, 1, 5])
    # 5 items with events, head = ceil(0.2 * 5) = 1 item: item 0.
    assert popularity_buckets(counts, 0.2).tolist() == [0, 2, 1, 1, 1, 1]
    assert popularity_buckets(counts, 0.5).tolist() == [0, 2, 1, 0, 1, 0]
    assert history_bucket_names([5, 20]) == ["<=5", "6-20", ">20"]


def test_report_files(tmp_path):
    data, labels, model = setup()
    summary = evaluate(model, data, labels, TEST, EvalConfig(ks=[10])).summary()
    write_report(tmp_path, summary, title="t", context={"model": "fixed"})
    assert json.loads((tmp_path / "metrics.json").read_text())["overall"]["ndcg@10"] == pytest.approx(0.75)
    md = (tmp_path / "report.md").read_text()
    assert "| head |" in md and "plots/buckets_at_10.png" in md
    assert (tmp_path / "plots" / "buckets_at_10.png").read_bytes()[:4] == b"\x89PNG"
