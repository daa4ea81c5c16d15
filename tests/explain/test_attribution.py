"""Explanations: occlusion with a known answer, reasons, the CLI and the service."""


import numpy as np
import pytest
import scipy.sparse as sp
import torch
from typer.testing import CliRunner

from lmrec.cli.main import app
from lmrec.config import RunConfig
from lmrec.data.sequences import Sequences
from lmrec.explain import attribution
from lmrec.explain.attribution import Explainer, by_item, occlusion, title_words
from lmrec.models.base import HasContentVectors, Recommender
from lmrec.pipeline import train_run
from lmrec.runs import Run
from tests.conftest import call_service, tiny_run

W = torch.tensor([[0.0, 1.0, 2.0, 0.0, 5.0],
                  [3.0, 0.0, 1.0, 0.0, 0.5],
                  [0.0, 4.0, 0.0, 1.0, 0.0],
                  [1.0, 1.0, 1.0, 0.0, 2.0],
                  [0.0, 0.0, 0.0, 0.0, 0.0]])  # (5, 5): what each history item adds to each item


class Additive(Recommender):
    """score(i) = sum over history events h of W[h, i]: removing an event drops i's score by W[h, i]."""

    name = "additive-test"

    def __init__(self) -> None:
        super().__init__()
        self.n_items = 5

    def fit(self, train, valid=None, *, time_budget_s=None):
        return self

    def _score(self, histories: Sequences) -> torch.Tensor:
        x = torch.zeros(len(histories), 5)
        for r in range(len(histories)):
            for h in histories[r]:
                x[r] += W[h]
        return x

    def _state(self):
        return {}

    def _load_state(self, state):
        pass


class AdditiveContent(Additive, HasContentVectors):
    """With content vectors: item 4 is closest in content to item 2, then to item 0."""

    uses_item_content = True

    def content_vectors(self):
        return np.array([[1, 0, 0], [0, 1, 0], [0.6, 0, 0.8], [0, 0, 1], [0.5, 0, 0.5]], dtype=np.float32)

    def encode_text(self, texts):
        return np.ones((len(texts), 3), dtype=np.float32)


def test_occlusion_by_hand():
    h = Sequences.from_lists([[0, 1, 3, 1], [2]])
    drops = occlusion(Additive(), h, [np.array([4, 2]), np.array([1])])
    # user 0, item 4: events 0, 1, 3, 1 add 5, 0.5, 2, 0.5; item 2: 2, 1, 1, 1
    np.testing.assert_allclose(drops[0], [[5, 0.5, 2, 0.5], [2, 1, 1, 1]])
    np.testing.assert_allclose(drops[1], [[4]])
    # Repeated events of one item add up; largest first.
    assert by_item(np.array([0, 1, 3, 1]), drops[0][0]) == [(0, 5.0), (3, 2.0), (1, 1.0)]


def test_occlusion_is_batched_and_windowed(monkeypatch):
    h = Sequences.from_lists([[0, 1, 3, 1, 2, 0], [3, 2]])
    items = [np.array([4, 1]), np.array([0])]
    whole = occlusion(Additive(), h, items)
    calls = []
    model = Additive()
    original = model.score
    monkeypatch.setattr(model, "score", lambda s: calls.append(len(s)) or original(s))
    monkeypatch.setattr(attribution, "ROWS_PER_FORWARD", 4)
    chunked = occlusion(model, h, items)
    assert calls == [4, 4, 2]  # 2 histories + 8 leave-one-out rows, in forwards of 4
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b)
    last2 = occlusion(Additive(), h, items, max_events=2)  # only the two most recent events
    np.testing.assert_allclose(last2[0], whole[0][:, -2:])


def _explainer(content=False):
    train = sp.csr_matrix(np.array([[1, 1, 0, 1, 0], [1, 0, 1, 1, 0], [0, 1, 1, 1, 0]]))  # item 4: no events
    names = ["Red lipstick", "Blue jeans", "Red dress", "Green tea", "Red jeans"]
    return Explainer(AdditiveContent() if content else Additive(), train, names)


def test_reasons_and_what_the_data_knows():
    ex = _explainer()
    [[jeans, dress], [pop]] = ex.explain(Sequences.from_lists([[0, 3], []]), [np.array([1, 2]), np.array([3])])
    assert jeans.reason == 'because of "Red lipstick" and "Green tea"' and jeans.source == "history"
    assert [(c.item, c.weight, c.co_occurrence) for c in jeans.contributions] == [(0, 1.0, 1), (3, 1.0, 2)]
    assert dress.contributions[0].item == 0 and dress.contributions[0].weight == 2.0
    assert pop.source == "popularity" and pop.reason == "popular: 3 events in the training data"
    [[new]] = ex.explain(Sequences.from_lists([[1, 3]]), [np.array([4])])
    assert new.source == "new-item" and new.reason == 'new item, similar to "Green tea"'
    [[none]] = ex.explain(Sequences.from_lists([[4]]), [np.array([0])])
    assert none.reason.startswith("fits your history as a whole")
    # Content models also show the title words two items share and their content similarity; a new
    # item is similar to the history item closest in content (item 2), not the largest occlusion (item 0).
    [[c]] = _explainer(content=True).explain(Sequences.from_lists([[0, 2]]), [np.array([4])])
    assert [x.shared_words for x in c.contributions] == [["red"], ["red"]]
    assert {x.item: x.content_similarity for x in c.contributions} == pytest.approx({0: 0.7071, 2: 0.9899}, abs=1e-4)
    assert c.reason == 'new item, similar to "Red dress"'
    assert title_words("The Lord of the Rings: Vol. 2") == {"lord", "rings"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("explain"), interests={"atoms": 0}).run_dir


def test_transformer_attention_over_the_history(run_dir):
    model = Run.open(run_dir).load_model()  # max_len 10
    w = model.history_attention(Sequences.from_lists([[0, 1, 2] * 5, [3]]))
    assert len(w[0]) == 15 and (w[0][:5] == 0).all() and w[0][5:].sum() == pytest.approx(1.0, abs=1e-5)
    assert (w[0] >= 0).all() and w[1].tolist() == pytest.approx([1.0])


def test_explain_cli(run_dir):
    runner = CliRunner()
    r = runner.invoke(app, ["explain", "--run", str(run_dir), "--user", "u3", "--k", "3"])
    assert r.exit_code == 0, r.output
    assert "because of" in r.output and "Item number" in r.output
    r = runner.invoke(app, ["explain", "--run", str(run_dir), "--user", "u3", "--item", "105"])
    assert r.exit_code == 0 and "Item number 5" in r.output
    r = runner.invoke(app, ["explain", "--run", str(run_dir), "--user", "u3", "--item", "999"])
    assert r.exit_code != 0 and "unknown item id" in r.output and "Traceback" not in r.output


def test_service_explanations(run_dir, tmp_path):
    db = tmp_path / "e.db"
    r = call_service(run_dir, db, "GET", "/recommend/u3?k=3&explain=true")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 3 and all(i["reason"] and i["contributions"] for i in items)
    assert all(c["attention"] is not None for c in items[0]["contributions"])  # sasrec: attention beside occlusion
    weights = [c["weight"] for c in items[0]["contributions"]]
    assert weights == sorted(weights, reverse=True)
    plain = call_service(run_dir, db, "GET", "/recommend/u3?k=3").json()["items"]
    assert "reason" not in plain[0] and [i["item_id"] for i in plain] == [i["item_id"] for i in items]
    one = call_service(run_dir, db, "GET", f"/explain/u3/{items[0]['item_id']}").json()
    assert one["reason"] == items[0]["reason"] and one["contributions"] == items[0]["contributions"]
    anon = call_service(run_dir, db, "POST", "/explain", json={"history": [103, 104], "item_id": 105})
    assert anon.status_code == 200 and {c["item_id"] for c in anon.json()["contributions"]} == {103, 104}
    fallback = call_service(run_dir, db, "GET", "/recommend/stranger?k=2&explain=true").json()
    assert fallback["source"] == "popularity" and fallback["items"][0]["reason"].startswith("popular")
    assert call_service(run_dir, db, "GET", "/explain/stranger/105").status_code == 404
    bad = call_service(run_dir, db, "GET", "/explain/u3/999")
    assert bad.status_code == 404 and bad.json()["field"] == "item_id"
    assert call_service(run_dir, db, "POST", "/explain", json={"history": [103]}).status_code == 422
    assert call_service(run_dir, db, "POST", "/explain", json={"history": [999], "item_id": 105}).status_code == 404


def test_report_plots_of_what_the_model_learned(run_dir):
    for name in ("training_curves", "item_map", "popularity_bias", "attention"):
        assert (run_dir / "plots" / f"{name}.png").stat().st_size > 1000, name
    report = (run_dir / "report.md").read_text()
    assert "## What the model learned" in report and "![item_map](plots/item_map.png)" in report


def test_models_without_vectors_or_attention_skip_those_plots(tmp_path, events_csv):
    config = RunConfig.model_validate({"runtime": {"progress": False}})
    train_run(events_csv, "ease", tmp_path / "run", config, log=lambda *_: None)
    plots = {p.name for p in (tmp_path / "run" / "plots").iterdir()}
    assert "popularity_bias.png" in plots and not plots & {"training_curves.png", "item_map.png", "attention.png"}
