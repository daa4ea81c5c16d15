import torch

from lmrec.training.trainer import Trainer, TrainerConfig


def make(seed=0):
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(seed)
    module = torch.nn.Linear(3, 1)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    batches = lambda epoch: [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]  # noqa: E731
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

    st = Trainer(module, batches, loss_fn, TrainerConfig(epochs=10, patience=3, progress=False), validate).fit()
    assert st.best_epoch == 2 and st.epoch == 5 and st.best_score == 0.5
    assert torch.equal(module.weight, seen[0.5]["weight"])


def test_time_budget_stops_training():
    module, batches, loss_fn = make()
    cfg = TrainerConfig(epochs=1000, patience=None, progress=False, time_budget_s=1e-9)
    assert Trainer(module, batches, loss_fn, cfg).fit().epoch == 1


def test_resume_from_checkpoint_matches_uninterrupted_training(tmp_path):
    module, batches, loss_fn = make()
    Trainer(module, batches, loss_fn, TrainerConfig(epochs=4, patience=None, progress=False)).fit()
    straight = module.weight.detach().clone()

    module, batches, loss_fn = make()
    Trainer(module, batches, loss_fn, TrainerConfig(epochs=2, patience=None, progress=False),
            checkpoint_dir=tmp_path).fit()
    module, batches, loss_fn = make(seed=1)  # different init: everything must come from the checkpoint
    trainer = Trainer(module, batches, loss_fn, TrainerConfig(epochs=4, patience=None, progress=False),
                      checkpoint_dir=tmp_path)
    assert trainer.load_checkpoint() and trainer.state.epoch == 2
    st = trainer.fit()
    assert st.epoch == 4
    torch.testing.assert_close(module.weight, straight)


def test_lr_factor_warmup_and_cosine():
    module, batches, loss_fn = make()
    t = Trainer(module, batches, loss_fn, TrainerConfig(schedule="cosine", warmup_steps=4, progress=False))
    assert t.lr_factor(0, 0.0) == 0.25 and t.lr_factor(3, 0.0) == 1.0  # linear warm-up over 4 steps
    assert abs(t.lr_factor(10, 0.5) - 0.5) < 1e-12 and abs(t.lr_factor(10, 1.0)) < 1e-12
    const = Trainer(module, batches, loss_fn, TrainerConfig(progress=False))
    assert const.lr_factor(0, 0.9) == 1.0


def test_cosine_schedule_follows_epochs_and_time_budget():
    module, batches, loss_fn = make()
    cfg = TrainerConfig(epochs=4, lr=0.1, patience=None, progress=False, schedule="cosine")
    lrs = [h["lr"] for h in Trainer(module, batches, loss_fn, cfg).fit().history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * 0.05  # last step of 16 is near 0
    # A budget that runs out first drives the decay instead: one epoch of a 1000-epoch plan.
    cfg = TrainerConfig(epochs=1000, lr=0.1, patience=None, progress=False, schedule="cosine", time_budget_s=1e-9)
    assert Trainer(module, batches, loss_fn, cfg).fit().history[-1]["lr"] == 0.0
