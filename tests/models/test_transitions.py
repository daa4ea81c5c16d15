"""The transitions model by hand: followers within a window, one unit of vote per user."""

import numpy as np
import pytest

from lmrec.data.sequences import Sequences
from lmrec.models import create_model
from tests.conftest import interactions_from


def test_followers_by_hand():
    # user 0: 0 -> 1 -> 2; user 1: 1 -> 2. Window 2, decay 0.5.
    data = interactions_from([[0, 1, 2], [1, 2]], 3)
    m = create_model("transitions", {"window": 2, "decay": 0.5, "recent": 2}).fit(data)
    # user 0 votes (0,1) 1, (1,2) 1, (0,2) 0.5, divided by their norm 1.5; user 1 votes (1,2) 1.
    expected = np.array([[0, 1 / 1.5, 0.5 / 1.5], [0, 0, 1 / 1.5 + 1], [0, 0, 0]])
    np.testing.assert_allclose(m.W.toarray(), expected, rtol=1e-6)
    s = m.score(Sequences.from_lists([[0, 1]])).numpy()[0]
    # latest event 1 counts 1, the one before (0) counts 0.5
    np.testing.assert_allclose(s, expected[1] + 0.5 * expected[0], atol=1e-5)


def test_one_user_moves_the_matrix_by_at_most_one():
    """The sensitivity DP relies on: any one user's votes have Frobenius norm 1."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        history = rng.integers(0, 30, rng.integers(2, 60)).tolist()
        w = create_model("transitions", {}).fit(interactions_from([history], 30)).W
        assert np.sqrt((w.toarray() ** 2).sum()) == pytest.approx(1.0, rel=1e-5)


def test_too_many_items_for_a_private_release():
    from lmrec.errors import ConfigError
    from lmrec.models import transitions

    m = create_model("transitions", {})
    m.release_privately(1.0, lambda: None)
    with pytest.raises(ConfigError, match="at most"):
        m.fit(interactions_from([[0, transitions.MAX_DP_ITEMS]], transitions.MAX_DP_ITEMS + 1))
