import numpy as np
import pytest
import torch

from lmrec.data import load_dataset
from lmrec.data.sequences import Sequences
from lmrec.data.splits import TEST, LeaveOneOutConfig, make_split
from lmrec.evaluation import EvalConfig, evaluate
from lmrec.models import create_model
from lmrec.models.sasrec import SASRecConfig, SASRecNet
from lmrec.models.sequential import training_windows


@pytest.mark.parametrize("positional", ["learned", "rotary"])
def test_changing_a_later_item_never_changes_earlier_outputs(positional):
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(max_len=12, d_model=16, n_heads=2, positional=positional), n_items=30).eval()
    tokens = torch.randint(1, 31, (4, 12))
    tokens[0, :5] = 0  # a left-padded row
    base = net(tokens)
    for j in (6, 9, 11):
        changed = tokens.clone()
        changed[:, j] = (changed[:, j] % 30) + 1
        out = net(changed)
        torch.testing.assert_close(out[:, :j], base[:, :j])
        assert not torch.allclose(out[:, j], base[:, j])


def test_padding_only_history_gives_finite_scores():
    model = create_model("sasrec", {"epochs": 1, "d_model": 16, "max_len": 8, "progress": False})
    from tests.conftest import interactions_from

    model.fit(interactions_from([[0, 1, 2], [2, 3, 4]], n_items=5))
    assert torch.isfinite(model.score(Sequences.from_lists([[]]))).all()


def test_training_windows_take_the_last_events():
    w = training_windows(Sequences.from_lists([[0, 1, 2, 3, 4], [7], [5, 6]]), max_len=3)
    assert w.tolist() == [[2, 3, 4, 5], [0, 0, 6, 7]]  # tokens are item + 1; the 1-event user is dropped


@pytest.mark.parametrize("loss", ["ce", "sampled", "bce"])
def test_overfits_a_tiny_deterministic_dataset(events_csv, loss):
    data = load_dataset(events_csv).interactions
    labels = make_split(data, LeaveOneOutConfig())
    torch.manual_seed(0)
    cfg = {"epochs": 150 if loss == "bce" else 60, "d_model": 32, "max_len": 8, "dropout": 0.0,
           "lr": 1e-2, "batch_size": 32, "loss": loss, "n_negatives": 8, "progress": False}
    model = create_model("sasrec", cfg).fit(data.subset(labels == 0))
    hr1 = evaluate(model, data, labels, TEST, EvalConfig(ks=[1])).summary()["overall"]["hr@1"]
    assert hr1 >= 0.9


@pytest.mark.integration
def test_short_training_on_ml100k_beats_popularity(shared_data):
    ds = load_dataset("ml-100k")
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    train = ds.interactions.subset(labels == 0)
    pop = evaluate(create_model("pop").fit(train), ds.interactions, labels, TEST).summary()["overall"]["ndcg@10"]
    torch.manual_seed(0)
    model = create_model("sasrec", {"epochs": 7, "max_len": 50, "d_model": 48, "lr": 3e-3, "batch_size": 32,
                                    "dropout": 0.2, "bf16": True, "progress": False}).fit(train)
    ndcg = evaluate(model, ds.interactions, labels, TEST).summary()["overall"]["ndcg@10"]
    assert ndcg > 1.5 * pop, (ndcg, pop)
    assert np.isfinite(ndcg)


def test_random_windows_reach_older_events():
    seqs = Sequences.from_lists([list(range(10)), [3, 4]])
    rng = np.random.default_rng(0)
    firsts = {int(training_windows(seqs, 3, rng)[0, 0]) for _ in range(50)}
    assert len(firsts) > 3  # windows start at different points of the long history
    assert training_windows(seqs, 3, rng)[1].tolist() == [0, 0, 4, 5]  # short users are unchanged


def test_item_and_position_embeddings_start_at_init_std():
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(d_model=64, max_len=200, init_std=0.02), n_items=5000)
    assert net.item_emb.weight[0].abs().max() == 0  # padding
    assert abs(net.item_emb.weight[1:].std().item() - 0.02) < 0.001
    assert abs(net.pos_emb.weight.std().item() - 0.02) < 0.002
