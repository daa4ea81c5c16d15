import numpy as np
import pytest
import torch

from lmrec.data import load_dataset
from lmrec.serving.retrieval import ExactRetriever, FaissRetriever, make_retriever
from tests.models.fast_configs import build


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.conftest import make_events

    path = tmp_path_factory.mktemp("retr") / "events.csv"
    make_events(n_users=60, n_items=40).write_csv(path)
    torch.manual_seed(0)
    data = load_dataset(path).interactions
    return build("sasrec", {"epochs": 5, "d_model": 16, "max_len": 8, "progress": False}).fit(data), data


def test_faiss_agrees_with_exact_top10(model):
    m, data = model
    histories = data.sequences()
    exact, _ = ExactRetriever(m).recommend(histories, 10)
    approx, scores = FaissRetriever(m).recommend(histories, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95
    for row, hist in zip(approx, (histories[u] for u in range(len(histories))), strict=True):
        assert not set(row) & set(hist.tolist())
    assert (np.diff(scores, axis=1) <= 1e-5).all()


def test_auto_picks_exact_for_small_catalogues_and_non_vector_models(model):
    m, data = model
    assert isinstance(make_retriever(m, "auto"), ExactRetriever)
    assert isinstance(make_retriever(m, "auto", faiss_above=10), FaissRetriever)
    pop = build("pop").fit(data)
    assert isinstance(make_retriever(pop, "auto", faiss_above=10), ExactRetriever)
