"""The social graph: reading relation files, neighbourhood scores by hand, the blend, the run
and the service."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.data.sequences import Interactions, Sequences
from lmrec.data.vocab import Vocabulary
from lmrec.errors import DataValidationError
from lmrec.runs import Run
from lmrec.social import adjacency, blend, neighbourhood_scores, read_social, social_scores
from lmrec.social.blend import SEARCH_PACE_S, SIMS, best_combo, evaluation_seconds, grid, history_matrix
from tests.conftest import call_service, tiny_run

USERS = Vocabulary([f"u{i}" for i in range(30)])


def test_relation_files_are_cleaned_and_reported(tmp_path):
    path = tmp_path / "friends.csv"
    path.write_text("user_id,friend_id\nu0,u1\nu1,u0\nu2,u2\nu3,ghost\nu1,u2\nu1,u2\n")
    pairs, report = read_social(path, USERS)
    assert pairs.tolist() == [[0, 1], [1, 2]]  # undirected, each once, smaller index first
    assert (report.edges, report.duplicates, report.self_loops, report.unknown_users) == (2, 2, 1, 1)
    assert report.unknown_examples == ["ghost"]
    assert any("skipped 1 rows naming users that are not in the data" in line for line in report.lines())


def test_lastfm_style_dat_and_bad_columns(tmp_path):
    dat = tmp_path / "user_friends.dat"
    dat.write_text("userID\tfriendID\r\nu4\tu5\r\nu5\tu4\r\n")
    pairs, _ = read_social(dat, USERS)
    assert pairs.tolist() == [[4, 5]]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\nu1,u2\n")
    with pytest.raises(DataValidationError, match=r"bad.csv: cannot tell which column is the user \(columns: a, b\)"):
        read_social(bad, USERS)
    pairs, _ = read_social(bad, USERS, user_col="a", friend_col="b")
    assert pairs.tolist() == [[1, 2]]
    with pytest.raises(DataValidationError, match="no column 'c' for the friend"):
        read_social(bad, USERS, user_col="a", friend_col="c")
    nobody = tmp_path / "nobody.csv"
    nobody.write_text("user_id,friend_id\nx,y\nu1,u1\n")
    with pytest.raises(DataValidationError, match="no relation between users of the data"):
        read_social(nobody, USERS)


def test_neighbourhood_scores_by_hand():
    # Users 0-1-2 in a chain, 3 alone. Histories over 4 items.
    hist = [[0], [1, 2], [2, 3, 0, 1], [3]]
    data = Interactions(np.repeat(np.arange(4), [len(h) for h in hist]), np.concatenate(hist),
                        np.arange(8), 4, 4)
    adj = adjacency(np.array([[0, 1], [1, 2]]), 4)
    x = history_matrix(data)
    direct = social_scores(adj, x, np.array([0, 1, 3]), fof=0.0)
    r2, r4 = 1 / np.sqrt(2), 1 / np.sqrt(4)
    np.testing.assert_allclose(direct[0], [0, r2, r2, 0])  # user 0: friend 1 has items 1, 2
    np.testing.assert_allclose(direct[1], [r4 + 1, r4, r4, r4])  # user 1: friends 0 ([0]) and 2 (all four)
    np.testing.assert_allclose(direct[2], [0, 0, 0, 0])  # user 3 has nobody
    with_fof = social_scores(adj, x, np.array([0]), fof=0.5)
    np.testing.assert_allclose(with_fof[0], [0.5 * r4, r2 + 0.5 * r4, r2 + 0.5 * r4, 0.5 * r4])  # + user 2 at 0.5
    # The service's per-request version agrees.
    np.testing.assert_allclose(neighbourhood_scores([ones(hist[1])], [ones(hist[2])], 4, 0.5), with_fof[0], rtol=1e-6)
    # sim: user 1 (kept history: item 0) shares item 0 with both friends, so each counts 1 + 2 * 1
    # times; with kept history [3] only friend 2 shares it (3x), friend 0 (item 0) counts once.
    own = Sequences.from_lists([[0], [3]])
    shared = social_scores(adj, x, np.array([1, 1]), fof=0.0, own=own, sim=2.0)
    np.testing.assert_allclose(shared[0], 3 * direct[1])
    np.testing.assert_allclose(shared[1], [1 + 3 * r4, 3 * r4, 3 * r4, 3 * r4])
    np.testing.assert_allclose(neighbourhood_scores([ones(hist[0]), ones(hist[2])], [], 4, 0.0, [3], 2.0), shared[1],
                               rtol=1e-6)
    # friends of friends are weighed alike: user 0 (kept [3]) reaches user 2 (who has item 3) at fof 0.5
    np.testing.assert_allclose(social_scores(adj, x, np.array([0]), 0.5, Sequences.from_lists([[3]]), 2.0)[0],
                               [1.5 * r4, r2 + 1.5 * r4, r2 + 1.5 * r4, 1.5 * r4], rtol=1e-6)


def ones(h: list[int]) -> tuple[list[int], list[float]]:
    return h, [1.0] * len(h)


def test_votes_grow_with_the_fourth_root_of_play_counts():
    # Friend 1 played item 0 16 times (in two events of 8: summed), item 1 once, item 2 81 times;
    # user 0 is their only friend. Votes c^(1/4) = 2, 1, 3 over sqrt(2 + 1 + 3).
    data = Interactions(np.array([0, 1, 1, 1, 1]), np.array([3, 0, 0, 1, 2]), np.arange(5), 2, 4,
                        value=np.array([5, 8, 8, 1, 81], dtype=np.float32))
    x = history_matrix(data)
    expected = np.array([2, 1, 3, 0]) / np.sqrt(6)
    np.testing.assert_allclose(x[1].toarray()[0], expected, rtol=1e-6)
    adj = adjacency(np.array([[0, 1]]), 2)
    np.testing.assert_allclose(social_scores(adj, x, np.array([0]), 0.0)[0], expected, rtol=1e-6)
    # The service's version from the friend's events and values; sim counts shared items once.
    friend = ([0, 0, 1, 2], [8.0, 8.0, 1.0, 81.0])
    np.testing.assert_allclose(neighbourhood_scores([friend], [], 4, 0.0), expected, rtol=1e-6)
    np.testing.assert_allclose(neighbourhood_scores([friend], [], 4, 0.0, [0, 3], 1.0), 2 * expected, rtol=1e-6)
    np.testing.assert_allclose(social_scores(adj, x, np.array([0]), 0.0, Sequences.from_lists([[0, 3]]), 1.0)[0],
                               2 * expected, rtol=1e-6)
    # An event without a value (NaN: posted live, a missing rating) counts 1; a negative one nothing.
    np.testing.assert_allclose(neighbourhood_scores([([0, 1, 2], [np.nan, -3.0, 16.0])], [], 4, 0.0),
                               np.array([1, 0, 2, 0]) / np.sqrt(3), rtol=1e-6)


def test_weight_search_grid_and_ties():
    assert {c[2] for c in grid()} == set(SIMS) and {c[2] for c in grid(own_events=False)} == {0.0}
    means = {(1.0, 0.0, 0.0): 0.4, (0.25, 0.0, 1.0): 0.5, (0.25, 0.0, 0.0): 0.5, (0.5, 0.0, 0.0): 0.5}
    assert best_combo(means) == (0.25, 0.0, 0.0)  # equal scores: the smaller weights


def test_the_weight_search_time_estimate_counts_every_ranking():
    # Validation: bucket "0" ranks 8 alphas x 2 fof + model, social, popularity = 19 times per user,
    # the three others 32 + 3 = 35 times; test: 4 buckets x 4. Validation users are capped at 2,000.
    assert evaluation_seconds(10, 5, 100) == pytest.approx(SEARCH_PACE_S * 100 * (10 * 124 + 5 * 16))
    assert evaluation_seconds(3000, 0, 100) == pytest.approx(SEARCH_PACE_S * 100 * 2000 * 124)


def test_the_fit_leaves_the_weight_search_its_time(tmp_path, monkeypatch):
    """The social evaluation runs after the fit, inside the command's budget: its estimate is
    taken from the fit's time."""
    from lmrec import pipeline
    from lmrec.config import RunConfig
    from lmrec.models.baselines import ItemKNN
    from tests.conftest import make_events

    (tmp_path / "friends.csv").write_text("user_id,friend_id\nu0,u1\nu2,u3\n")
    make_events().write_csv(tmp_path / "events.csv")
    budgets = []
    fit = ItemKNN.fit
    monkeypatch.setattr(ItemKNN, "fit", lambda self, train, valid=None, time_budget_s=None:
                        budgets.append(time_budget_s) or fit(self, train, valid, time_budget_s=time_budget_s))
    cfg = RunConfig.model_validate({"runtime": {"progress": False}, "training": {"time_budget": 5, "refit": False}})
    for reserved in (0.0, 60.0):
        monkeypatch.setattr(pipeline, "social_seconds", lambda *_, r=reserved: r)
        pipeline.train_run(tmp_path / "events.csv", "itemknn", tmp_path / f"run{reserved:g}", cfg,
                           social=tmp_path / "friends.csv", log=lambda *_: None)
    assert budgets[0] - budgets[1] == pytest.approx(60.0, abs=2.0)


def test_blend_keeps_the_model_where_there_is_no_circle():
    model = np.array([[3.0, 1.0, 2.0], [1.0, 2.0, 3.0]])
    social = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    out = blend(model, social, np.array([4.0, 4.0]))
    assert np.argsort(-out[0]).tolist() == [0, 2, 1]
    assert out[1].argmax() == 0  # a strong circle overrides the model
    assert np.allclose(blend(model, social, np.array([0.0, 0.0]))[1], (model[1] - 2) / np.std(model[1]))


@pytest.fixture(scope="module")
def social_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("social")
    # Pairs of users next to each other on the item cycle are friends: their histories overlap.
    lines = ["user_id,friend_id"] + [f"u{i},u{i + 1}" for i in range(0, 28, 2)] + ["u1,ghost"]
    (folder / "friends.csv").write_text("\n".join(lines) + "\n")
    from lmrec.config import RunConfig
    from lmrec.pipeline import train_run
    from tests.conftest import make_events

    make_events().write_csv(folder / "events.csv")
    train_run(folder / "events.csv", "itemknn", folder / "run", RunConfig.model_validate({"runtime": {"progress": False}}),
              social=folder / "friends.csv", log=lambda *_: None)
    return folder / "run"


def test_a_run_keeps_its_graph_and_measures_the_blend(social_run):
    import json

    metrics = json.loads((social_run / "metrics.json").read_text())["social"]
    assert metrics["relations"] == 14 and metrics["users_with_relations"] == 28
    assert set(metrics["buckets"]) == {"0", "1-3", "4-10", ">10"}
    zero = metrics["buckets"]["0"]
    assert zero["social"] > zero["popularity"]  # a friend next on the cycle knows the target
    assert zero["alpha"] > 0
    run = Run.open(social_run)
    assert len(run.social().pairs) == 14
    # The events' ratings travel with the run: the neighbourhood's votes read them.
    values = run.dataset.interactions.value
    assert values is not None and values.dtype == np.float32 and set(np.unique(values)) == {1, 2, 3, 4, 5}
    recs = run.recommend(["u0", "u29"], 3)
    assert recs.height == 6
    # u29 has no relations: the model's own list, as if the run had no graph
    alone, _ = run.load_model().recommend(run.histories(run.dataset.users.lookup(["u29"], what="user id")), 3)
    assert recs.filter(pl.col("user_id") == "u29")["item_id"].to_list() == list(run.dataset.items.decode(alone[0]))


def test_the_service_blends_relations_and_takes_new_ones(social_run, tmp_path):
    db = tmp_path / "e.db"
    r = call_service(social_run, db, "GET", "/recommend/u0?k=3")
    assert r.json()["source"] == "social"
    # Per request from the friends' events and their ratings, as the run's batch path does.
    batch = Run.open(social_run).recommend(["u0"], 3)
    assert [str(i["item_id"]) for i in r.json()["items"]] == [str(i) for i in batch["item_id"]]
    np.testing.assert_allclose([i["score"] for i in r.json()["items"]], batch["score"].to_numpy(), rtol=1e-4)
    assert call_service(social_run, db, "GET", "/recommend/u29?k=3").json()["source"] == "model"  # no friends
    new = call_service(social_run, db, "GET", "/recommend/stranger?k=3").json()
    assert new["source"] == "popularity"
    r = call_service(social_run, db, "POST", "/social", json={"user_id": "stranger", "friend_id": "u5"})
    assert r.status_code == 201 and r.json() == {"user_id": "stranger", "relations": 1}
    after = call_service(social_run, db, "GET", "/recommend/stranger?k=3").json()
    assert after["source"] == "social" and after["items"] != new["items"]
    run = Run.open(social_run)
    u5 = set(run.histories(np.array([run.dataset.users.index("u5")]))[0])  # their friend's items come first
    assert {run.dataset.items.index(i["item_id"]) for i in after["items"]} <= u5
    # Stored: a restarted service still knows the relation.
    assert call_service(social_run, db, "GET", "/recommend/stranger?k=3").json()["source"] == "social"
    for body in ({"user_id": "a", "friend_id": "a"}, {"user_id": "a"}, {"user_id": " ", "friend_id": "b"},
                 {"user_id": "a", "friend_id": "b", "extra": 1}):
        assert call_service(social_run, db, "POST", "/social", json=body).status_code == 422


def test_relations_need_a_social_run(tmp_path):
    tiny_run(tmp_path, "sasrec")
    r = call_service(tmp_path / "run", tmp_path / "e.db", "POST", "/social", json={"user_id": "u1", "friend_id": "u2"})
    assert r.status_code == 409 and "trained without --social" in r.json()["detail"]


def test_cli_reports_a_bad_social_file(tmp_path):
    from tests.conftest import make_events

    make_events().write_csv(tmp_path / "events.csv")
    (tmp_path / "f.csv").write_text("who,whom\nu1,u2\n")
    result = CliRunner().invoke(app, ["train", "--data", str(tmp_path / "events.csv"), "--model", "pop",
                                      "--out", str(tmp_path / "run"), "--social", str(tmp_path / "f.csv")])
    assert result.exit_code == 2 and "cannot tell which column is the user" in " ".join(result.output.split())
    assert not (tmp_path / "run").exists()


def test_adjacency_is_symmetric():
    a = adjacency(np.array([[0, 2]]), 3)
    assert sp.issparse(a) and a[0, 2] == a[2, 0] == 1 and a.sum() == 2
