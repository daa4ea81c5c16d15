import numpy as np
import pytest

from lmrec.data.sequences import Sequences
from lmrec.models.baselines import EASE, ItemKNN, Popularity
from tests.conftest import interactions_from

# 3 users over 4 items: item 0 is everyone's, item 3 nobody's.
DATA = interactions_from([[0, 1], [0, 1, 2], [0, 2]], n_items=4)


def test_popularity_ranks_by_count():
    items, scores = Popularity().fit(DATA).recommend(Sequences.from_lists([[]]), k=4)
    assert items[0].tolist() == [0, 1, 2, 3] and scores[0].tolist() == [3, 2, 2, 0]


def test_itemknn_shrunk_cosine_by_hand():
    model = ItemKNN({"shrink": 1.0}).fit(DATA)
    # items 0 and 1: co-occur for 2 users; |x0| = sqrt(3), |x1| = sqrt(2).
    assert model.W[0, 1] == pytest.approx(2 / (np.sqrt(3) * np.sqrt(2) + 1.0))
    assert model.W[1, 2] == pytest.approx(1 / (2 + 1.0))
    assert model.W[0, 0] == 0 and model.W[3].nnz == 0


def test_itemknn_keeps_only_top_neighbours():
    model = ItemKNN({"neighbors": 1}).fit(DATA)
    assert (np.diff(model.W.indptr) <= 1).all()


def test_ease_matches_closed_form_reference():
    lam = 2.0
    model = EASE({"l2": lam}).fit(DATA)
    x = DATA.to_matrix().toarray().astype(np.float64)
    g = x.T @ x + lam * np.eye(4)
    p = np.linalg.inv(g)
    b = np.eye(4) - p / np.diag(p)  # Steck (2019), eq. 8
    np.testing.assert_allclose(model.W, b, atol=1e-5)
    assert np.allclose(np.diag(model.W), 0)
