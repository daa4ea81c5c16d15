import numpy as np
import pytest
import torch

from lmrec.data import load_dataset
from lmrec.data.sequences import Sequences
from lmrec.data.splits import TEST, LeaveOneOutConfig, make_split
from lmrec.evaluation import EvalConfig, evaluate
from lmrec.models.sasrec import SASRecConfig, SASRecNet
from lmrec.training.batching import LengthBucketedBatches, training_windows
from tests.models.fast_configs import build


@pytest.mark.parametrize("options", [{"positional": "learned"}, {"positional": "rotary"},
                                     {"position_from": "start"}, {"block": "sasrec"}])
def test_changing_a_later_item_never_changes_earlier_outputs(options):
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(**{"max_len": 12, "d_model": 16, "n_heads": 2, "dropout": 0.1, "block": "pre_ln"}
                                 | options), n_items=30).eval()
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
    model = build("sasrec", {"epochs": 1, "d_model": 16, "max_len": 8, "progress": False})
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
    model = build("sasrec", cfg).fit(data.subset(labels == 0))
    hr1 = evaluate(model, data, labels, TEST, EvalConfig(ks=[1])).summary()["overall"]["hr@1"]
    assert hr1 >= 0.9


@pytest.mark.integration
def test_short_training_on_ml100k_beats_popularity(shared_data):
    ds = load_dataset("ml-100k")
    labels = make_split(ds.interactions, LeaveOneOutConfig())
    train = ds.interactions.subset(labels == 0)
    pop = evaluate(build("pop").fit(train), ds.interactions, labels, TEST).summary()["overall"]["ndcg@10"]
    torch.manual_seed(0)
    model = build("sasrec", {"epochs": 7, "max_len": 50, "d_model": 48, "lr": 3e-3, "batch_size": 32,
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
    cfg = SASRecConfig(d_model=64, max_len=200, init_std=0.02, dropout=0.1, n_heads=2, block="pre_ln")
    net = SASRecNet(cfg, n_items=5000)
    assert net.item_emb.weight[0].abs().max() == 0  # padding
    assert abs(net.item_emb.weight[1:].std().item() - 0.02) < 0.001
    assert abs(net.pos_emb.weight.std().item() - 0.02) < 0.002


@pytest.mark.parametrize("position_from", ["end", "start"])
def test_positions_count_from_the_chosen_end_of_each_row(position_from):
    torch.manual_seed(0)
    net = SASRecNet(SASRecConfig(max_len=6, d_model=8, n_heads=1, position_from=position_from, dropout=0.1,
                                 block="pre_ln"), n_items=9).eval()
    seen = []
    net.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    tokens = torch.tensor([[0, 0, 0, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    net(tokens)
    # Row 0 holds three events in columns 3..5: from the end they are positions 3..5 like
    # row 1's last three; from the start they are positions 0..2 like row 1's first three.
    pos = [3, 4, 5] if position_from == "end" else [0, 1, 2]
    expected = net.item_emb.weight[[4, 5, 6]] * 8**0.5 + net.pos_emb.weight[pos]
    torch.testing.assert_close(seen[0][0, 3:], expected)


def test_sasrec_block_layout_by_hand():
    """q = LN1(x); x = q + proj(Attn(q W_q, x W_k, x W_v)); x = LN2(x); out = x + FFN(x)."""
    torch.manual_seed(0)
    cfg = SASRecConfig(d_model=8, n_heads=1, max_len=3, ffn_mult=2, block="sasrec", dropout=0.1)
    block = SASRecNet(cfg, n_items=5).blocks[0].eval()
    x = torch.randn(1, 3, 8)
    causal = torch.ones(3, 3, dtype=torch.bool).tril()[None, None]
    w_q, w_k, w_v = block.qkv.weight.split(8)
    b_q, b_k, b_v = block.qkv.bias.split(8)
    q = block.ln1(x)
    logits = (q @ w_q.T + b_q) @ (x @ w_k.T + b_k).transpose(1, 2) / 8**0.5
    att = logits.masked_fill(~causal[0], float("-inf")).softmax(-1) @ (x @ w_v.T + b_v)
    h = block.ln2(q + block.proj(att))
    ffn = block.ffn[3](torch.relu(block.ffn[0](h)))
    torch.testing.assert_close(block(x, causal), h + ffn)


def test_epoch_loss_norm_weighs_every_position_the_same():
    from tests.conftest import interactions_from

    seqs = interactions_from([[0, 1, 2], [1, 2, 3, 4, 0], [3, 4]], n_items=5).sequences()
    losses = {}
    for norm in ("batch", "epoch"):
        torch.manual_seed(0)
        model = build("sasrec", {"d_model": 16, "max_len": 8, "batch_size": 2, "dropout": 0.0, "n_heads": 2,
                                 "block": "pre_ln", "loss_norm": norm})
        model.net = model.build_net(5)
        model._batches = LengthBucketedBatches(seqs, max_len=8, batch_size=2, random_window=False, seed=0)
        batches = model._batches(epoch=0)
        # 2 + 4 + 1 = 7 targets in 2 batches
        assert model._batches.positions_per_batch == 3.5
        losses[norm] = [model._loss(b).loss.item() for b in batches]
        targets = [int(((b[:, 1:] != 0) & (b[:, :-1] != 0)).sum()) for b in batches]
    # epoch: the batch mean times (targets in the batch / 3.5), i.e. the batch sum / 3.5
    expected = [m * n / 3.5 for m, n in zip(losses["batch"], targets, strict=True)]
    assert losses["epoch"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("options", [{"block": "pre_ln"}, {"block": "sasrec"}, {"positional": "rotary"},
                                     {"position_from": "start"}])
def test_last_position_only_equals_the_full_forward(options):
    """Inference computes the final block for the last position only; it must match the full pass."""
    torch.manual_seed(0)
    cfg = {"max_len": 10, "d_model": 16, "n_heads": 2, "dropout": 0.1, "block": "pre_ln"} | options
    net = SASRecNet(SASRecConfig(**cfg), n_items=30).eval()
    tokens = torch.randint(1, 31, (5, 10))
    tokens[1, :4] = 0
    tokens[2, :9] = 0  # one event only
    torch.testing.assert_close(net(tokens, last_only=True)[:, -1], net(tokens)[:, -1])


class TickingClock:
    """``time.perf_counter`` that advances 1 ms per call: epoch times become a count of calls,
    the same in every run, so budget arithmetic is tested without the machine's load in it."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1e-3
        return self.now


def test_refit_follows_the_evaluated_path_and_compresses_it_into_a_short_budget(monkeypatch):
    from tests.conftest import interactions_from

    clock = TickingClock()
    monkeypatch.setattr("lmrec.training.trainer.time", clock)
    monkeypatch.setattr("lmrec.models.sequential.time", clock)
    data = interactions_from([[j % 7, (j + 1) % 7, (j + 2) % 7, (j + 3) % 7] for j in range(40)], n_items=7)
    torch.manual_seed(0)
    model = build("sasrec", {"d_model": 16, "max_len": 8, "epochs": 6, "batch_size": 8, "lr": 0.01,
                             "lr_schedule": "cosine", "warmup_steps": 3, "refit_start": "scratch"})
    model.fit(data)
    st = model.train_state
    assert st.best_epoch == 6 and st.events == len(data) and len(st.lrs) == 30
    full = model.refit(data)  # no budget: every epoch, every step at the same rate
    assert full.train_state.lrs == st.lrs and full.train_state.stopped_by == "follow"
    assert full.config == model.config and full.training.epochs == 6
    # A budget that holds about two of the evaluated epochs: the whole path in two epochs.
    per_epoch = float(np.median([h["seconds"] for h in st.history]))
    short = model.refit(data, time_budget_s=2.5 * per_epoch)
    assert short.train_state.epoch == 2
    assert short.train_state.lrs == [st.lrs[min(29, int(s * 3))] for s in range(10)]


def test_refit_from_the_evaluated_weights_replays_the_tail_of_the_path():
    from tests.conftest import interactions_from

    data = interactions_from([[j % 7, (j + 1) % 7, (j + 2) % 7, (j + 3) % 7] for j in range(40)], n_items=7)
    more = interactions_from([[j % 7, (j + 1) % 7, (j + 2) % 7, (j + 3) % 7, (j + 4) % 7] for j in range(40)],
                             n_items=7)
    torch.manual_seed(0)
    model = build("sasrec", {"d_model": 16, "max_len": 8, "epochs": 12, "batch_size": 8, "lr": 0.01,
                             "lr_schedule": "cosine", "warmup_steps": 3})
    model.fit(data)
    st = model.train_state
    assert model.training.refit_start == "evaluated" and model.refit_share() == 0.1
    assert st.best_epoch == 12 and st.steps_per_epoch == 5
    refit = model.refit(more)  # ceil(10% of 12) = 2 epochs: the last 10 of the 60 steps' rates
    assert refit.train_state.epoch == 2 and refit.train_state.lrs == st.lrs[-10:]
    # At learning rate 0 the refit must return the evaluated weights exactly: it starts from them.
    st.lrs = [0.0] * len(st.lrs)
    frozen = model.refit(more)
    for name, value in model.net.state_dict().items():
        torch.testing.assert_close(frozen.net.state_dict()[name], value)
    model.training = model.training.model_copy(update={"refit_start": "scratch"})
    fresh = model.refit(more)  # the whole path at rate 0: the fresh initial weights
    assert fresh.train_state.epoch == 12
    assert not torch.equal(fresh.net.state_dict()["item_emb.weight"], model.net.state_dict()["item_emb.weight"])
