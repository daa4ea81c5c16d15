"""The first slate for a new user: popular, but one item per cluster before a second from any."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.coldstart import onboarding
from lmrec.coldstart.onboarding import (
    SlateSetting,
    choose_setting,
    diverse_slate,
    first_slate,
    greedy_slate,
    item_space,
    kmeans,
    simulate,
)
from lmrec.config import RunConfig
from lmrec.models.baselines import EASE
from lmrec.pipeline import train_run
from lmrec.runs import Run
from tests.conftest import call_service, interactions_from, tiny_run


def _three_clusters():
    rng = np.random.default_rng(0)
    centres = np.eye(3) * 5
    vectors = np.concatenate([centres[c] + 0.1 * rng.normal(size=(10, 3)) for c in range(3)])  # items 0-9, 10-19, 20-29
    counts = np.concatenate([np.arange(100, 90, -1), np.arange(50, 40, -1), np.arange(20, 10, -1)])
    return vectors.astype(np.float32), counts


def test_kmeans_separates_clear_clusters_and_is_seeded():
    vectors, _ = _three_clusters()
    labels = kmeans(vectors, 3, seed=1)
    assert all(len(set(labels[s : s + 10])) == 1 for s in (0, 10, 20)) and len(set(labels)) == 3
    assert (labels == kmeans(vectors, 3, seed=1)).all()


def test_slate_takes_each_cluster_in_turn(monkeypatch):
    monkeypatch.setattr(onboarding, "CANDIDATES_PER_SLOT", 10)
    vectors, counts = _three_clusters()
    # k clusters for a slate of k: clusters by total popularity, each gives its most popular item
    assert diverse_slate(vectors, counts, 3).tolist() == [0, 10, 20]
    assert np.argsort(-counts)[:3].tolist() == [0, 1, 2]  # the popularity slate: one cluster only
    assert len(set(diverse_slate(vectors, counts, 8).tolist())) == 8
    popular = np.argsort(-counts, kind="stable")
    assert diverse_slate(vectors, counts, 3, depth=3, clusters=1).tolist() == popular[:3].tolist()
    assert set(diverse_slate(vectors, counts, 4, depth=6, clusters=2).tolist()) <= set(popular[:6].tolist())


def test_models_without_item_vectors_cluster_an_svd_of_the_events():
    inter = interactions_from([[0, 1, 2], [0, 1], [3, 4, 5], [4, 5], [0, 2], [3, 5]], 6)
    space = item_space(EASE().fit(inter), inter.to_matrix())
    assert space.shape[0] == 6
    labels = kmeans(space, 2)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]


def test_a_setting_scales_with_the_slate():
    assert SlateSetting(100, 20).at(20) == (100, 20) and SlateSetting(100, 20).at(10) == (50, 10)
    assert SlateSetting(20, 1).at(5) == (5, 1) and SlateSetting(20, 1).name() == "popularity"
    assert SlateSetting(50, 10).at(1) == (2, 1) and SlateSetting(50, 10).name() == "50/10"
    assert SlateSetting(100, 20).describe(10) == "50 candidates in 10 clusters"
    assert SlateSetting(20, 1).describe() == "the popularity list"


class ClusterModel:
    """Recommends the most popular unclicked items of the clusters the clicks fall in."""

    def __init__(self, cluster_of: np.ndarray, counts: np.ndarray) -> None:
        self.cluster_of, self.counts = cluster_of, counts

    def recommend(self, histories, k):
        rows = []
        for r in range(len(histories)):
            clicked = set(histories[r].tolist())
            same = [i for i in np.argsort(-self.counts, kind="stable")
                    if self.cluster_of[i] in self.cluster_of[list(clicked)] and i not in clicked]
            rows.append((same + [-1] * k)[:k])
        return np.array(rows), None


def test_simulated_new_users_by_hand():
    cluster_of, counts = np.repeat([0, 1], 15), np.arange(30, 0, -1)  # items 0-14, 15-29; item 0 most popular
    model = ClusterModel(cluster_of, counts)
    slate = np.r_[0:10, 15:25]
    # A clicks 3 (their only slate item), then gets cluster 0's top 10 without 3: 0-2, 4-10;
    # B clicks nothing and keeps the slate.
    sim = simulate(model, slate, [np.array([3, 10, 27]), np.array([27])])
    dcg = lambda ranks: sum(1 / math.log2(r + 1) for r in ranks)  # noqa: E731
    assert sim["users_with_clicks"] == [0.5, 0.0, 0.0]
    assert sim["ndcg"][0].tolist() == pytest.approx([dcg([4]) / dcg([1, 2, 3]), 0])  # 3 is 4th of the slate
    for after in sim["ndcg"][1:]:  # {10, 27} left; 10 is the 10th recommendation
        assert after.tolist() == pytest.approx([dcg([10]) / dcg([1, 2]), 0])


def test_a_catalogue_smaller_than_the_lists():
    inter = interactions_from([[0, 1], [1, 2], [0, 2]], 3)
    model = EASE().fit(inter)
    assert item_space(model, inter.to_matrix()[:, :2]).shape == (2, 3)  # too small for an SVD: the columns
    sim = simulate(model, np.array([0, 1, 2]), [np.array([1, 2]), np.array([0])])
    assert [len(v) for v in sim["ndcg"]] == [2] * 4 and sim["users_with_clicks"] == [1.0, 0.5, 0.0]
    setting, scores = choose_setting(model, item_space(model, inter.to_matrix()), inter.item_counts(),
                                     [np.array([1, 2]), np.array([0, 2])])
    assert setting.name() in scores


def test_the_choice_prefers_a_slate_that_reaches_every_cluster():
    # 3 clusters of 40 items, all of cluster 0 more popular than cluster 1, and 1 than 2: the top 20
    # by popularity is cluster 0 only. Users like one cluster each; the model recommends from it.
    cluster_of = np.repeat([0, 1, 2], 40)
    counts = np.arange(120, 0, -1)
    vectors = np.eye(3, dtype=np.float32)[cluster_of] + 0.01 * np.random.default_rng(0).normal(size=(120, 3))
    rng = np.random.default_rng(1)
    histories = [rng.choice(np.arange(40) + 40 * (u % 3), 8, replace=False) for u in range(30)]
    setting, scores = choose_setting(ClusterModel(cluster_of, counts), vectors.astype(np.float32), counts, histories)
    assert scores["popularity"] < scores[setting.name()] and setting.depth >= 100  # cluster 2 starts at rank 81
    assert set(scores) == {"popularity"} | {f"{d}/{c}" for d in (20, 50, 100, 200) for c in (2, 5, 10, 20)}


def test_a_greedy_slate_by_hand():
    # Two clusters: items 0-4 (more popular) and 5-9. One user likes {0, 1, 2}, two like {5, 6}.
    cluster_of, counts = np.repeat([0, 1], 5), np.arange(10, 0, -1)
    model = ClusterModel(cluster_of, counts)
    users = [np.array([0, 1, 2]), np.array([5, 6]), np.array([5, 6])]
    # Slot 1: clicking 5 gives each of two users [6, 7, 8, 9]: their one relevant item first,
    # NDCG 1, total 2 (6 ties with 5: the more popular wins); 0, 1 or 2 give the first user 1.
    # Slot 2: 0, 1, 2 gain 1 (the first user's first click); 6 would leave the other two nothing
    # to find (NDCG 0, gain -2). Slot 3: the first user's second click (1 or 2) keeps NDCG 1: gain
    # 0, as for items nobody has; 1 is more popular. Slot 4: 2 would be their last item (-1),
    # 6 still -2: 3, which nobody clicks (0), wins.
    slate = greedy_slate(model, users, counts, depth=10, length=4)
    assert slate.tolist() == [5, 0, 1, 3]
    assert greedy_slate(model, users, counts, depth=10, length=4).tolist() == slate.tolist()  # deterministic
    assert greedy_slate(model, users, counts, depth=3, length=3).tolist() == [0, 1, 2]  # only the top 3 to place


def test_a_greedy_slate_reaches_every_cluster_first():
    cluster_of = np.repeat([0, 1, 2], 40)
    counts = np.arange(120, 0, -1)  # cluster 0 is the most popular: the top 20 is all cluster 0
    rng = np.random.default_rng(1)
    histories = [rng.choice(np.arange(40) + 40 * (u % 3), 8, replace=False) for u in range(30)]
    slate = greedy_slate(ClusterModel(cluster_of, counts), histories, counts, depth=120)
    assert len(slate) == 20 and len(set(slate.tolist())) == 20
    assert set(cluster_of[slate[:3]].tolist()) == {0, 1, 2}
    setting, scores = choose_setting(ClusterModel(cluster_of, counts), np.eye(3, dtype=np.float32)[cluster_of],
                                     counts, histories[::2], builders=histories[1::2])
    assert {"greedy/100", "greedy/200"} <= set(scores) and scores["greedy/100"] > scores["popularity"]


def test_a_greedy_setting_serves_its_order_then_popularity():
    setting = SlateSetting(100, 0, (7, 3, 9))
    counts = np.arange(10, 0, -1)
    assert setting.name() == "greedy/100" and SlateSetting.from_dict(setting.as_dict()) == setting
    assert first_slate(np.eye(10, dtype=np.float32), counts, 2, setting).tolist() == [7, 3]
    assert first_slate(np.eye(10, dtype=np.float32), counts, 5, setting).tolist() == [7, 3, 9, 0, 1]
    assert SlateSetting.from_dict({"depth": 100, "clusters": 20}).order is None  # runs from before greedy slates


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("onboarding"), training={"epochs": 3}, interests={"atoms": 0}).run_dir


def test_train_chooses_the_slate_that_the_run_serves(run_dir, tmp_path):
    choice = json.loads((run_dir / "run.json").read_text())["onboarding"]
    assert choice["users"] > 0 and choice["chosen"] in choice["ndcg_after_3_clicks"]
    assert choice["ndcg_after_3_clicks"][choice["chosen"]] == max(choice["ndcg_after_3_clicks"].values())
    run = Run.open(run_dir)
    setting = run.onboarding_setting()
    assert (setting.depth, setting.clusters) == (choice["depth"], choice["clusters"])
    space = item_space(run.load_model(), run.dataset.interactions.to_matrix())
    expected = run.dataset.items.decode(first_slate(space, run.popularity(), 6, setting))
    assert run.onboarding(6)["item_id"].to_list() == list(expected)
    body = call_service(run_dir, tmp_path / "e.db", "GET", "/onboarding?k=6").json()
    assert [i["item_id"] for i in body] == list(expected)


def test_cli_and_service(run_dir, tmp_path):
    r = CliRunner().invoke(app, ["onboarding", "--run", str(run_dir), "--k", "4"])
    assert r.exit_code == 0, r.output
    assert "first slate for a new user" in r.output and "Item number" in r.output and "chosen by train" in r.output
    body = call_service(run_dir, tmp_path / "e.db", "GET", "/onboarding?k=4").json()
    assert len(body) == 4 and len({i["item_id"] for i in body}) == 4 and body[0]["title"].startswith("Item number")
    assert call_service(run_dir, tmp_path / "e.db", "GET", "/onboarding?k=0").status_code == 422


def test_free_text_query_on_a_content_model(tmp_path, run_dir):
    from tests.conftest import make_events, make_items

    make_events().write_csv(tmp_path / "events.csv")
    make_items().write_csv(tmp_path / "items.csv")
    config = RunConfig.model_validate({"runtime": {"progress": False}})
    train_run(tmp_path / "events.csv", "text-knn", tmp_path / "tk", config, items=tmp_path / "items.csv",
              log=lambda *_: None)
    db = tmp_path / "e.db"
    r = call_service(tmp_path / "tk", db, "POST", "/recommend", json={"query": "Item number 17", "k": 3})
    assert r.status_code == 200, r.text
    assert r.json()["items"][0]["item_id"] == 117  # the title the query names
    r = call_service(tmp_path / "tk", db, "POST", "/recommend",
                     json={"query": "Item number 17", "history": [117, 103], "k": 3})
    assert r.status_code == 200 and not {117, 103} & {i["item_id"] for i in r.json()["items"]}
    # A model without a text tower cannot answer a query: a clear 409, not a traceback.
    r = call_service(run_dir, db, "POST", "/recommend", json={"query": "anything"})
    assert r.status_code == 409 and "content model" in r.json()["detail"]
    assert call_service(tmp_path / "tk", db, "POST", "/recommend", json={"query": ""}).status_code == 422
