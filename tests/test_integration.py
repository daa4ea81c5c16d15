"""End-to-end checks on the real datasets; skipped with a reason when they are absent."""

import pytest

from lmrec.data import load_dataset
from lmrec.data.splits import TEST, LeaveOneOutConfig, make_split
from lmrec.evaluation import evaluate
from lmrec.models import create_model

pytestmark = pytest.mark.integration


def test_named_datasets_have_their_published_counts(shared_data):
    expected = {"ml-100k": (943, 1682, 100_000), "ml-1m": (6040, 3416, 999_611), "beauty": (22_332, 12_086, 198_215)}
    for name, counts in expected.items():
        ds = load_dataset(name)
        assert (ds.n_users, ds.n_items, len(ds.interactions)) == counts, name
        assert ds.item_info is not None and ds.item_info["title"].null_count() == 0


def test_ease_beats_popularity_on_ml100k(shared_data):
    ds = load_dataset("ml-100k")
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    train = ds.interactions.subset(labels == 0)
    ndcg = {m: evaluate(create_model(m).fit(train), ds.interactions, labels, TEST).summary()["overall"]["ndcg@10"]
            for m in ("pop", "ease")}
    assert ndcg["pop"] > 0.01
    assert ndcg["ease"] > 1.5 * ndcg["pop"]
