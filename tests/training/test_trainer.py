import time

import pytest
import torch

from lmrec.training.config import RuntimeConfig, TrainingConfig
from lmrec.training.hooks import StepOutput, TrainingHook
from lmrec.training.trainer import LRPath, Trainer

QUIET = RuntimeConfig(progress=False)


def config(**kw) -> TrainingConfig:
    """Concrete settings (no "auto"): a constant rate, validation every epoch."""
    base = dict(epochs=10, batch_size=8, lr=1e-3, weight_decay=0.0, lr_schedule="constant", warmup_steps=0,
                patience=None, eval_every=1, valid_users=None, bf16=False)
    return TrainingConfig(**(base | kw))


def make(seed=0, n_batches=4):
    x = torch.randn(8 * n_batches, 3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(seed)
    module = torch.nn.Linear(3, 1)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    batches = lambda epoch: [(x[i : i + 8], y[i : i + 8]) for i in range(0, len(x), 8)]  # noqa: E731
    loss_fn = lambda b: ((module(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    return module, batches, loss_fn


def test_early_stopping_restores_the_best_weights():
    module, batches, loss_fn = make()
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.1])
    seen = {}

    def validate():
        s = next(scores)
        seen[s] = {k: v.clone() for k, v in module.state_dict().items()}
        return s

    st = Trainer(module, batches, loss_fn, config(patience=3), validate, runtime=QUIET).fit()
    assert st.best_epoch == 2 and st.epoch == 5 and st.best_score == 0.5 and st.stopped_by == "patience"
    assert torch.equal(module.weight, seen[0.5]["weight"])


def test_auto_patience_is_ten_epochs_without_gain_and_two_checks():
    module, batches, loss_fn = make()
    scores = [0.1, 0.5] + [0.4] * 30
    calls: list = []

    def validate():
        calls.append(1)
        return scores[len(calls) - 1]

    st = Trainer(module, batches, loss_fn, config(epochs=30, patience="auto"), validate, runtime=QUIET).fit()
    assert st.best_epoch == 2 and st.epoch == 12 and st.stopped_by == "patience"  # checked every epoch
    calls[:] = [1]  # the next run's first check scores 0.5
    sparse = Trainer(module, batches, loss_fn, config(epochs=30, patience="auto", eval_every=5), validate,
                     runtime=QUIET).fit()
    # Checks at epochs 5 (best), 10, 15: the second check without gain is the first 10 epochs after it.
    assert sparse.best_epoch == 5 and sparse.epoch == 15


def test_time_budget_stops_training():
    module, batches, loss_fn = make()
    st = Trainer(module, batches, loss_fn, config(epochs=1000), runtime=QUIET, time_budget_s=1e-9).fit()
    assert st.epoch == 1 and st.stopped_by == "time budget"


def test_unresolved_auto_values_are_refused():
    module, batches, loss_fn = make()
    with pytest.raises(ValueError, match="training.lr is still 'auto'"):
        Trainer(module, batches, loss_fn, config(lr="auto"), runtime=QUIET)


def test_resume_from_checkpoint_matches_uninterrupted_training(tmp_path):
    module, batches, loss_fn = make()
    Trainer(module, batches, loss_fn, config(epochs=4), runtime=QUIET).fit()
    straight = module.weight.detach().clone()

    ckpt = RuntimeConfig(progress=False, checkpoint_dir=str(tmp_path))
    module, batches, loss_fn = make()
    Trainer(module, batches, loss_fn, config(epochs=2), runtime=ckpt).fit()
    module, batches, loss_fn = make(seed=1)  # different init: everything must come from the checkpoint
    trainer = Trainer(module, batches, loss_fn, config(epochs=4), runtime=ckpt)
    assert trainer.load_checkpoint() and trainer.state.epoch == 2
    st = trainer.fit()
    assert st.epoch == 4 and len(st.lrs) == 16
    torch.testing.assert_close(module.weight, straight)


def test_lr_factor_warmup_and_cosine():
    module, batches, loss_fn = make()
    t = Trainer(module, batches, loss_fn, config(lr_schedule="cosine", warmup_steps=4), runtime=QUIET)
    assert t.lr_factor(0, 0.0) == 0.25 and t.lr_factor(3, 0.0) == 1.0  # linear warm-up over 4 steps
    assert abs(t.lr_factor(10, 0.5) - 0.5) < 1e-12 and abs(t.lr_factor(10, 1.0)) < 1e-12
    const = Trainer(module, batches, loss_fn, config(), runtime=QUIET)
    assert const.lr_factor(0, 0.9) == 1.0


def test_cosine_schedule_follows_epochs_and_time_budget():
    module, batches, loss_fn = make()
    st = Trainer(module, batches, loss_fn, config(epochs=4, lr=0.1, lr_schedule="cosine"), runtime=QUIET).fit()
    assert st.lrs == sorted(st.lrs, reverse=True) and st.lrs[-1] < 0.1 * 0.05  # last step of 16 is near 0
    assert [h["lr"] for h in st.history] == st.lrs[3::4]  # every step is recorded, the epoch's last in history
    # A budget that runs out first drives the decay instead: one epoch of a 1000-epoch plan.
    cfg = config(epochs=1000, lr=0.1, lr_schedule="cosine")
    assert Trainer(module, batches, loss_fn, cfg, runtime=QUIET, time_budget_s=1e-9).fit().history[-1]["lr"] == 0.0


def test_lr_path_is_stretched_over_longer_epochs():
    path = LRPath([1.0, 0.9, 0.8, 0.7], steps_per_epoch=2)
    assert [path.at(s, 2) for s in range(4)] == [1.0, 0.9, 0.8, 0.7]
    assert [path.at(s, 4) for s in range(8)] == [1.0, 1.0, 0.9, 0.9, 0.8, 0.8, 0.7, 0.7]
    assert path.at(100, 2) == 0.7  # past the end: the last rate


def test_following_a_path_repeats_its_rates_on_more_data():
    module, batches, loss_fn = make()
    first = Trainer(module, batches, loss_fn, config(epochs=3, lr=0.1, lr_schedule="cosine", warmup_steps=2),
                    runtime=QUIET).fit()
    module, batches, loss_fn = make(n_batches=8)  # twice the batches per epoch
    st = Trainer(module, batches, loss_fn, config(epochs=2), runtime=QUIET, follow=first.lr_path(2)).fit()
    assert st.epoch == 2 and st.stopped_by == "follow"
    assert st.lrs == [lr for lr in first.lrs[:8] for _ in range(2)]


def test_eval_every_auto_spaces_out_a_slow_validation():
    module, batches, loss_fn = make()
    def validate():  # slow relative to an epoch of 4 tiny steps
        time.sleep(0.05)
        return 0.0

    st = Trainer(module, batches, loss_fn, config(epochs=10, eval_every="auto"), validate, runtime=QUIET).fit()
    assert st.eval_every == 5  # capped
    assert [h["epoch"] for h in st.history if "valid" in h] == [1, 6, 10]  # the last epoch is always checked


class AddL2(TrainingHook):
    name = "l2"

    def __init__(self) -> None:
        self.calls = {"wrap": 0, "after_backward": 0, "epoch_end": 0}

    def wrap(self, trainer):
        self.calls["wrap"] += 1

    def extra_loss(self, batch, output):
        assert isinstance(output, StepOutput)
        return 10.0 * output.context["module"].weight.pow(2).sum()

    def after_backward(self, trainer):
        self.calls["after_backward"] += 1
        assert trainer.module.weight.grad is not None

    def on_epoch_end(self, trainer, record):
        self.calls["epoch_end"] += 1
        record["seen_by_hook"] = 1.0


def test_hooks_add_losses_and_see_every_step():
    module, batches, loss_fn = make()
    hook = AddL2()
    st = Trainer(module, batches, lambda b: StepOutput(loss_fn(b), {"module": module}), config(epochs=30, lr=0.05),
                 runtime=QUIET, hooks=[hook]).fit()
    assert hook.calls == {"wrap": 1, "after_backward": 120, "epoch_end": 30}
    assert {"loss", "loss/l2", "seen_by_hook"} <= set(st.history[-1])
    # The penalty dominates the fit: the weights are pulled far below the true (1, -2, 0.5).
    assert module.weight.abs().max() < 0.2
