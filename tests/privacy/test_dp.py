"""User-level differential privacy: calibration, per-user gradients, Poisson batches, DP counts,
and a DP run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("opacus", reason="differential privacy needs Opacus: pip install 'lmrec[privacy]'")

from lmrec.data.sequences import Sequences  # noqa: E402
from lmrec.data.splits import TRAIN  # noqa: E402
from lmrec.errors import ConfigError  # noqa: E402
from lmrec.models.sasrec import SASRecConfig, SASRecNet  # noqa: E402
from lmrec.privacy.dp import (  # noqa: E402
    DPSGD,
    Accountant,
    DPConfig,
    DPPlan,
    PoissonBatches,
    _epsilon,
    _WindowLoss,
    dp_popularity,
)
from lmrec.runs import Run  # noqa: E402
from lmrec.training.losses import window_ce  # noqa: E402
from tests.conftest import call_service, tiny_run  # noqa: E402


def seqs_of(lists: list[list[int]]) -> Sequences:
    lengths = np.array([len(s) for s in lists])
    return Sequences(np.concatenate([[0], np.cumsum(lengths)]), np.concatenate(lists).astype(np.int64))


def test_plan_spends_the_target_epsilon_and_less_budget_means_more_noise():
    plans = {eps: DPPlan.make(DPConfig(epsilon=eps, epochs=3), users=1000, fits=2) for eps in (1.0, 8.0)}
    for eps, p in plans.items():
        assert p.delta == pytest.approx(1e-3)  # "1/n"
        assert p.batch_size == 125 and p.sample_rate == pytest.approx(0.125)  # an eighth of 1,000 users
        assert p.steps == 2 * 3 * 8
        spent = _epsilon([(p.popularity_noise, 1.0, 1), (p.noise_multiplier, p.sample_rate, p.steps)], p.delta)
        assert eps * 0.97 <= spent <= eps  # calibrated to the budget, not above it
        assert _epsilon([(p.popularity_noise, 1.0, 1)], p.delta) == pytest.approx(0.1 * eps, rel=0.03)
    assert plans[1.0].noise_multiplier > plans[8.0].noise_multiplier
    assert plans[1.0].popularity_noise > plans[8.0].popularity_noise


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="epsilonn"):
        DPConfig.model_validate({"epsilon": 8, "epsilonn": 1})
    with pytest.raises(ValueError, match="epsilon"):
        DPConfig.model_validate({"epsilon": 0})


def tiny_net(n_items: int = 12) -> SASRecNet:
    torch.manual_seed(0)
    return SASRecNet(SASRecConfig(max_len=6, d_model=8, dropout=0.0, n_heads=1, block="sasrec"), n_items)


def test_per_user_gradients_equal_one_backward_per_user():
    net = tiny_net()
    hook = DPSGD(Accountant(DPPlan.make(DPConfig(epsilon=8), users=100, fits=1)))
    hook.loss_module = _WindowLoss(net)
    batch = torch.tensor([[0, 0, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 8], [0, 0, 0, 0, 9, 10, 11]])  # (3, L + 1)
    out = hook._step(batch)
    for u in range(3):
        net.zero_grad()
        loss = window_ce(net, batch[u])
        loss.backward()
        for p in net.parameters():
            torch.testing.assert_close(p.grad_sample[u], p.grad, atol=1e-6, rtol=1e-5)
    assert not out.loss.requires_grad  # the trainer must not call backward on it


def test_window_loss_is_the_mean_over_the_users_positions():
    net = tiny_net()
    window = torch.tensor([0, 0, 0, 3, 4, 5, 6])  # 3 trained positions: 3 -> 4, 4 -> 5, 5 -> 6
    hidden = net(window[None, :-1])[0]  # (L, D)
    logits = hidden @ net.item_weights().T
    expected = torch.nn.functional.cross_entropy(logits[-3:], torch.tensor([3, 4, 5]))
    torch.testing.assert_close(window_ce(net, window), expected)


def test_poisson_batches_sample_each_user_independently():
    seqs = seqs_of([[1, 2, 3]] * 400)
    batches = PoissonBatches(seqs, max_len=4, sample_rate=0.1, random_window=False, seed=0)
    sizes = [len(b) for e in range(5) for b in batches(e)]
    assert len(sizes) == 5 * 10  # 1 / q batches per epoch
    assert 35 < np.mean(sizes) < 45 and np.std(sizes) > 1  # Binomial(400, 0.1), not fixed batches


def test_dp_popularity_caps_each_user_and_is_accounted():
    plan = DPPlan.make(DPConfig(epsilon=8, popularity_cap=2), users=3, fits=1)
    plan.popularity_noise = 1e-9  # no noise: see the capped counts
    accountant = Accountant(plan)
    counts = dp_popularity(seqs_of([[0, 1, 2, 3], [0, 0, 0], [1]]), 5, accountant, seed=0)
    assert counts[0] > 0.99 and counts.sum() == pytest.approx(2 + 1 + 1)  # user 0 counts 2 items, once each
    assert counts[4] == pytest.approx(0, abs=1e-6)
    assert accountant.rdp.history == [(1e-9, 1.0, 1)]


def test_dp_run_records_epsilon_and_serves_dp_popularity(tmp_path):
    result = tiny_run(tmp_path, privacy={"dp": {"epsilon": 8, "epochs": 2}})
    meta = json.loads((result.run_dir / "run.json").read_text())
    spent = meta["privacy"]["epsilon"]
    assert 0 < spent <= 8 and meta["privacy"]["steps"] == meta["privacy"]["planned_steps"]
    assert meta["onboarding"] is None  # choosing the slate would read histories outside the accountant
    run = Run.open(result.run_dir)
    dp_counts = np.load(result.run_dir / "dp" / "popularity.npy")
    np.testing.assert_array_equal(run.popularity(), np.rint(dp_counts))
    assert not np.array_equal(run.popularity(), run.dataset.interactions.item_counts())  # the noisy counts
    top = int(np.argmax(run.popularity()))
    r = call_service(result.run_dir, tmp_path / "events.db", "GET", "/recommend/stranger?k=1").json()
    assert r["source"] == "popularity" and r["items"][0]["item_id"] == run.dataset.items.ids[top]
    assert "epsilon" in (result.run_dir / "report.md").read_text()


@pytest.mark.parametrize(("model", "sections", "message"), [
    ("pop", {"model": {}}, "cannot be trained privately"),
    ("sasrec", {"multitask": {"tasks": ["like"]}}, "multitask"),
    ("sasrec-text", {}, "fusion 'fused'"),
])
def test_dp_refuses_what_it_cannot_account_for(tmp_path, model, sections, message):
    with pytest.raises(ConfigError, match=message):
        tiny_run(tmp_path, model, privacy={"dp": {"epsilon": 8}}, **sections)


def test_dp_rules_fill_only_what_the_user_left_auto():
    from lmrec.models import create_model
    from lmrec.pipeline import DP_LR, DP_MAX_LEN, apply_dp_rules
    from lmrec.training.config import TrainingConfig

    cfg = DPConfig(epsilon=8, epochs=4)
    plan = DPPlan.make(cfg, users=1000, fits=2)
    auto = create_model("sasrec", {})
    apply_dp_rules(auto, cfg, plan)
    assert (auto.training.epochs, auto.training.patience, auto.training.lr) == (4, None, DP_LR["adamw"])
    assert auto.config.max_len == DP_MAX_LEN and auto.training.warmup_steps == plan.steps // 20
    assert auto.training.refit_start == "scratch"  # the plan's steps count a whole second fit
    mine = create_model("sasrec", {"max_len": 30}, training=TrainingConfig(lr=3e-3, refit_start="evaluated"))
    apply_dp_rules(mine, cfg, plan)
    assert mine.training.lr == 3e-3 and mine.config.max_len == 30 and mine.training.refit_start == "evaluated"


def test_content_only_sasrec_text_trains_privately(tmp_path):
    result = tiny_run(tmp_path, "sasrec-text", model={"d_model": 16, "max_len": 10, "fusion": "text"},
                      privacy={"dp": {"epsilon": 8, "epochs": 1}})
    assert 0 < result.summary["privacy"]["epsilon"] <= 8


def test_transitions_are_released_with_gaussian_noise(tmp_path):
    """A PrivatelyReleasable model: one Gaussian release per fit (the evaluated one and the refit),
    fresh noise each time, the whole epsilon spent over them and the popularity counts."""
    result = tiny_run(tmp_path, "transitions", model={}, privacy={"dp": {"epsilon": 8}})
    p = result.summary["privacy"]
    assert p["mechanism"] == "release" and p["steps"] == 2 and p["sample_rate"] == 1.0
    assert 7.9 < p["epsilon"] <= 8.0
    run = Run.open(result.run_dir)
    served, evaluated = run.load_model("final"), run.load_model("eval")
    clean = type(served)(served.config).fit(run.dataset.interactions)
    noise = served.W - clean.W.toarray()
    assert noise.std() == pytest.approx(p["noise_multiplier"], rel=0.2)  # every entry, zeros included
    assert not np.allclose(noise[:3, :3], (evaluated.W - type(served)(served.config).fit(
        run.dataset.interactions.subset(run.labels == TRAIN)).W.toarray())[:3, :3])  # not the same draw twice
