"""User-level differential privacy: DP-SGD for the sequence models and DP popularity counts.

Each user is one sample. A training step takes a Poisson sample of users (Opacus'
``UniformWithReplacementSampler``), computes every sampled user's gradient separately
(``torch.func``: ``vmap`` of ``grad`` over the users' windows, because the models use their item
table functionally on both the input and the output side, which Opacus' per-layer hooks do not
see), and hands them to Opacus' ``DPOptimizer``, which clips each user's gradient to
``max_grad_norm``, adds Gaussian noise and steps the wrapped AdamW. Opacus' RDP accountant
records every step.

The noise is calibrated before training for the whole plan: the evaluated fit and the refit of
the served model (``epochs`` each, every one of the run's users sampled at rate ``q``), plus one
release of popularity counts (each user adds 1 to at most ``popularity_cap`` of their items;
Gaussian noise), which gets ``popularity_share`` of the budget. What was actually spent (a
fit stopped early by the time budget spends less) is what the accountant reports afterwards.

Not covered by the guarantee (docs/privacy.md): hyperparameters chosen on validation before a
private run, and the run directory itself, which keeps the events it serves from.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from lmrec.data.sequences import Sequences
from lmrec.errors import ConfigError
from lmrec.training.batching import training_windows
from lmrec.training.hooks import StepOutput, TrainingHook
from lmrec.training.losses import window_ce

if TYPE_CHECKING:
    from lmrec.training.trainer import Trainer

INSTALL = 'pip install "lmrec[privacy]"'
MICRO_BATCH = 64  # users whose per-sample gradients are computed together (memory: users x parameters)
DEFAULT_BATCH = 512  # expected users per step; larger batches dilute the noise
MIN_STEPS_PER_EPOCH = 8
DP_DIR = "dp"
# Opacus' default RDP orders and larger ones: little noise per step is best bounded at high orders.
ALPHAS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + [2**k for k in range(6, 12)]


class DPConfig(BaseModel):
    """The run config's ``privacy.dp`` section: ``privacy.dp = {epsilon = 8}``."""

    model_config = ConfigDict(extra="forbid")

    epsilon: Annotated[float, Field(gt=0)] = Field(description="the privacy budget of the whole run (fit, refit and "
                                                   "popularity counts together)")
    delta: Annotated[float, Field(gt=0, lt=1)] | Literal["1/n"] = Field(
        "1/n", description="delta of (epsilon, delta)-DP; 1/n: one over the number of users")
    max_grad_norm: Annotated[float, Field(gt=0)] = Field(1.0, description="each user's gradient is clipped to this "
                                                         "L2 norm per step")
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto", description=f"expected users per step (Poisson sampling); auto: {DEFAULT_BATCH}, at most an eighth of "
        "the users")
    epochs: Annotated[int, Field(ge=1)] = Field(10, description="planned epochs of each fit (the noise is calibrated "
                                                "for this many, for the fit and the refit)")
    optimizer: Literal["adamw", "sgd"] = Field(
        "adamw", description="the optimizer the noisy gradients step (sgd: momentum 0.9; its learning rate is "
        "training.lr)")
    popularity_cap: Annotated[int, Field(ge=1)] = Field(100, description="items of one user counted at most in the "
                                                        "popularity counts (the sensitivity is its square root)")
    popularity_share: Annotated[float, Field(gt=0, lt=1)] = Field(0.1, description="share of epsilon spent on the "
                                                                  "popularity counts")


def _require_opacus():
    try:
        import opacus  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"privacy.dp needs Opacus: {INSTALL}") from e


def _epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = list(history)
    with warnings.catch_warnings():  # calibration probes extreme noise, whose best order is past the grid
        warnings.simplefilter("ignore")
        return float(accountant.get_epsilon(delta, alphas=ALPHAS))


def _bisect(spent, target: float, what: str) -> float:
    """The smallest noise multiplier whose epsilon (``spent(sigma)``, decreasing) is <= ``target``."""
    lo, hi = 0.0, 1.0
    while spent(hi) > target:
        lo, hi = hi, hi * 2
        if hi > 1e6:
            raise ConfigError(f"privacy.dp: epsilon {target:g} cannot be reached for {what}; raise epsilon")
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if spent(mid) <= target else (mid, hi)
        if hi - lo < 1e-3 * hi:
            break
    return hi


@dataclass
class DPPlan:
    """The noise of every mechanism of a run, chosen before it starts."""

    epsilon: float  # the target
    delta: float
    users: int  # samples of the neighbouring relation: the run's users
    batch_size: int  # expected users per step
    sample_rate: float
    steps: int  # planned DP-SGD steps over all fits
    noise_multiplier: float
    popularity_noise: float  # noise multiplier of the popularity counts (std = this * sqrt(cap))
    max_grad_norm: float
    popularity_cap: int
    optimizer: str = "adamw"
    mechanism: str = "dp-sgd"  # or "release": one Gaussian release per fit (PrivatelyReleasable models)

    @classmethod
    def make(cls, cfg: DPConfig, users: int, fits: int) -> DPPlan:
        _require_opacus()
        if users < 2:
            raise ConfigError("privacy.dp needs at least 2 users")
        delta = 1.0 / users if cfg.delta == "1/n" else float(cfg.delta)
        batch = min(DEFAULT_BATCH, max(1, users // MIN_STEPS_PER_EPOCH)) if cfg.batch_size == "auto" \
            else min(cfg.batch_size, users)
        q = batch / users
        steps = fits * cfg.epochs * int(1 / q)
        pop = _bisect(lambda s: _epsilon([(s, 1.0, 1)], delta), cfg.epsilon * cfg.popularity_share,
                      "the popularity counts")
        sgd = _bisect(lambda s: _epsilon([(pop, 1.0, 1), (s, q, steps)], delta), cfg.epsilon,
                      f"{steps} steps at sampling rate {q:.3g}")
        return cls(cfg.epsilon, delta, users, batch, q, steps, sgd, pop, cfg.max_grad_norm, cfg.popularity_cap,
                   cfg.optimizer)

    @classmethod
    def make_release(cls, cfg: DPConfig, users: int, fits: int) -> DPPlan:
        """One Gaussian release (sensitivity 1) per fit of a ``PrivatelyReleasable`` model, every user
        in it (rate 1), plus the popularity counts."""
        _require_opacus()
        if users < 2:
            raise ConfigError("privacy.dp needs at least 2 users")
        delta = 1.0 / users if cfg.delta == "1/n" else float(cfg.delta)
        pop = _bisect(lambda s: _epsilon([(s, 1.0, 1)], delta), cfg.epsilon * cfg.popularity_share,
                      "the popularity counts")
        noise = _bisect(lambda s: _epsilon([(pop, 1.0, 1), (s, 1.0, fits)], delta), cfg.epsilon,
                        f"{fits} releases")
        return cls(cfg.epsilon, delta, users, users, 1.0, fits, noise, pop, 1.0, cfg.popularity_cap, "-", "release")

    def describe(self) -> str:
        if self.mechanism == "release":
            return (f"DP release for (epsilon {self.epsilon:g}, delta {self.delta:.2g}): {self.users:,} users, "
                    f"{self.steps} releases of the model's sum (each user's share of norm 1), noise multiplier "
                    f"{self.noise_multiplier:.3f}; popularity noise multiplier {self.popularity_noise:.2f} (cap "
                    f"{self.popularity_cap} items per user)")
        return (f"DP-SGD for (epsilon {self.epsilon:g}, delta {self.delta:.2g}): {self.users:,} users, ~{self.batch_size} "
                f"per step (rate {self.sample_rate:.3g}), {self.steps:,} planned steps, noise multiplier "
                f"{self.noise_multiplier:.3f}, clip {self.max_grad_norm:g}; popularity noise multiplier "
                f"{self.popularity_noise:.2f} (cap {self.popularity_cap} items per user)")


class Accountant:
    """Opacus' RDP accountant over every mechanism of the run (shared by the fit and the refit)."""

    def __init__(self, plan: DPPlan) -> None:
        from opacus.accountants import RDPAccountant

        self.plan = plan
        self.rdp = RDPAccountant()
        self.popularity_releases = 0

    def spent(self) -> float:
        return _epsilon(self.rdp.history, self.plan.delta) if self.rdp.history else 0.0

    def steps(self) -> int:
        """DP-SGD steps or model releases taken: every accounted mechanism but the popularity release."""
        return sum(n for _, _, n in self.rdp.history) - self.popularity_releases

    def release(self) -> None:
        """Account one Gaussian release of a ``PrivatelyReleasable`` model's sum (every user, sensitivity 1)."""
        self.rdp.history.append((self.plan.noise_multiplier, 1.0, 1))

    def describe_steps(self) -> str:
        what = "releases of the model" if self.plan.mechanism == "release" else "DP-SGD steps"
        return f"{self.steps():,} {what}"

    def summary(self) -> dict[str, Any]:
        p = self.plan
        return {"epsilon": self.spent(), "epsilon_target": p.epsilon, "delta": p.delta, "users": p.users,
                "sample_rate": p.sample_rate, "steps": self.steps(), "planned_steps": p.steps,
                "noise_multiplier": p.noise_multiplier, "max_grad_norm": p.max_grad_norm,
                "popularity_noise": p.popularity_noise, "popularity_cap": p.popularity_cap, "accountant": "rdp",
                "mechanism": p.mechanism}


def dp_popularity(sequences: Sequences, n_items: int, accountant: Accountant, seed: int) -> np.ndarray:
    """(n_items,) noisy counts of the users who had each item: each user counts once per item, for at
    most ``popularity_cap`` of their items (a random choice, ``seed``, when they have more), so one user moves
    the vector by at most sqrt(cap) in L2; Gaussian noise of std ``popularity_noise * sqrt(cap)``."""
    p, rng = accountant.plan, np.random.default_rng(seed)
    counts = np.zeros(n_items)
    for u in range(len(sequences)):
        items = np.unique(sequences[u])
        if len(items) > p.popularity_cap:
            items = rng.choice(items, p.popularity_cap, replace=False)
        counts[items] += 1
    # The noise comes from the OS's entropy, not the run's seed: noise that can be drawn again protects nothing.
    noisy = counts + np.random.default_rng().normal(0.0, p.popularity_noise * math.sqrt(p.popularity_cap), n_items)
    accountant.rdp.history.append((p.popularity_noise, 1.0, 1))
    accountant.popularity_releases += 1
    return np.maximum(noisy, 0.0)


class DPPopularity:
    """The run artifact ``dp/``: the DP popularity counts the service falls back on (the accounting is in run.json)."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = counts

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "popularity.npy", self.counts)

    @staticmethod
    def load(directory: Path) -> np.ndarray | None:
        path = directory / "popularity.npy"
        return np.load(path) if path.exists() else None


class PoissonBatches:
    """Each epoch: one window per user (the most recent events, or a random window), then
    ``1 / q`` batches, each holding every user independently with probability ``q``."""

    def __init__(self, seqs: Sequences, *, max_len: int, sample_rate: float, random_window: bool,
                 seed: int | None) -> None:
        """``seed`` None: the OS's entropy (what DP needs; a seed is for tests)."""
        self.seqs, self.max_len, self.sample_rate = seqs, max_len, sample_rate
        self.random_window, self.seed = random_window, seed

    def __call__(self, epoch: int) -> list[torch.Tensor]:
        from opacus.utils.uniform_sampler import UniformWithReplacementSampler

        rng = np.random.default_rng(None if self.seed is None else epoch + 1_000_003 * self.seed)
        windows = training_windows(self.seqs, self.max_len, rng if self.random_window else None)  # (U, L + 1)
        sampler = UniformWithReplacementSampler(num_samples=len(windows), sample_rate=self.sample_rate,
                                                generator=torch.Generator().manual_seed(int(rng.integers(2**62))))
        out = []
        for idx in sampler:
            w = windows[idx]
            longest = int((w != 0).sum(axis=1).max()) if len(w) else 2
            out.append(torch.from_numpy(w[:, -longest:]))  # (B, longest), B ~ Binomial(U, q)
        return out


class _WindowLoss(torch.nn.Module):
    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return window_ce(self.net, window)


class DPSGD(TrainingHook):
    """Makes a trainer's steps DP-SGD steps: Poisson batches of users, per-user gradients, Opacus'
    clipping, noise and accounting. Wraps a trainer of a sequential model (its batches are
    :class:`~lmrec.training.batching.LengthBucketedBatches`); one instance serves the fit and the
    refit, so their steps add up in one accountant."""

    name = "dp"

    def __init__(self, accountant: Accountant) -> None:
        self.accountant = accountant
        self.loss_module: torch.nn.Module | None = None

    def wrap(self, trainer: Trainer) -> None:
        from opacus.optimizers import DPOptimizer

        p, data = self.accountant.plan, trainer.batches
        if callable(data.seqs):
            raise ConfigError("privacy.dp cannot be combined with data augmentation (one user would be many samples)")
        inner = trainer.optimizer
        if p.optimizer == "sgd":  # noise stays noise: no per-coordinate rescaling of rarely-signalled rows
            inner = torch.optim.SGD(trainer.module.parameters(), lr=trainer.lr, momentum=0.9)
        # The noise and the Poisson sample come from the OS's entropy, never the run's seed: noise that
        # can be drawn again protects nothing, and a known sample voids the amplification by sampling.
        noise = torch.Generator(device=next(trainer.module.parameters()).device)
        noise.seed()
        trainer.optimizer = DPOptimizer(inner, noise_multiplier=p.noise_multiplier,
                                        max_grad_norm=p.max_grad_norm, expected_batch_size=p.batch_size,
                                        loss_reduction="mean", generator=noise)
        trainer.optimizer.attach_step_hook(self.accountant.rdp.get_optimizer_hook_fn(p.sample_rate))
        trainer.batches = PoissonBatches(data.seqs, max_len=data.max_len, sample_rate=p.sample_rate,
                                         random_window=data.random_window, seed=None)
        self.loss_module, trainer.loss_fn = _WindowLoss(trainer.module), self._step

    def _step(self, batch: torch.Tensor) -> StepOutput:
        """Per-user gradients of ``batch`` (B, L + 1) into each parameter's ``grad_sample`` (B, *shape)."""
        from torch.func import functional_call, grad_and_value, vmap

        module = self.loss_module
        trainable = {n: q.detach() for n, q in module.named_parameters() if q.requires_grad}
        fixed = {n: q.detach() for n, q in module.named_parameters() if not q.requires_grad}
        fixed |= dict(module.named_buffers())

        def one_user(params, window):  # window (L + 1,) -> scalar loss
            return functional_call(module, params | fixed, (window,))

        per_user = vmap(grad_and_value(one_user), in_dims=(None, 0), randomness="different")
        grads: dict[str, list[torch.Tensor]] = {n: [] for n in trainable}
        losses = []
        with torch.autocast("cpu", enabled=False), warnings.catch_warnings():
            # vmap runs the CPU attention kernel per user (no batching rule); measured still
            # faster than the math kernel that has one (0.74 vs 0.83 s per 64 ML-1M users).
            warnings.filterwarnings("ignore", "There is a performance drop", UserWarning)
            for chunk in batch.split(MICRO_BATCH) if len(batch) else ():
                g, loss = per_user(trainable, chunk)  # g[name] (b, *shape), loss (b,)
                for n in trainable:
                    grads[n].append(g[n])
                losses.append(loss)
        for n, q in module.named_parameters():
            if q.requires_grad:  # an empty Poisson batch still steps: the noise alone
                q.grad_sample = torch.cat(grads[n]) if len(batch) else torch.zeros(1, *q.shape)
        return StepOutput(torch.cat(losses).mean() if len(batch) else torch.zeros(()))

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        record["epsilon"] = self.accountant.spent()
