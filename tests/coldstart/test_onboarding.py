"""The first slate for a new user: popular, but one item per cluster before a second from any."""

import numpy as np
import pytest
from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.coldstart import onboarding
from lmrec.coldstart.onboarding import diverse_slate, item_space, kmeans
from lmrec.config import RunConfig
from lmrec.models.baselines import EASE
from lmrec.pipeline import train_run
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


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("onboarding"), training={"epochs": 3}, interests={"atoms": 0}).run_dir


def test_cli_and_service(run_dir, tmp_path):
    r = CliRunner().invoke(app, ["onboarding", "--run", str(run_dir), "--k", "4"])
    assert r.exit_code == 0, r.output
    assert "first slate for a new user" in r.output and "Item number" in r.output
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
