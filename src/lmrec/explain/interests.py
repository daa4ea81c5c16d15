"""Sparse interest codes: every user state as a few of K learned interest atoms.

A top-k sparse autoencoder (Makhzani & Frey 2013, "k-sparse autoencoders") over the user vectors
of a trained vector model (sasrec, sasrec-text, dnn):

    z     = TopK_k(ReLU(W (u / s - b) + c))    (K,) non-negative, at most k atoms active
    u_hat = s (b + z @ A)                      A: (K, D) the atoms; b: the state everyone shares;
                                               s: the states' mean centred norm (a fixed scale)

The codes are trained so that ``u_hat`` ranks the catalogue like ``u``: the loss is
KL(softmax(u E^T) || softmax(u_hat E^T)) over every item (E: the model's output item vectors),
not the vectors' squared error, because an error along a direction that separates the top items
changes recommendations and one along a direction every item shares does not. One fit serves
several sparsity levels: each step trains the code cut to one k of ``active_grid``, drawn at
random, and the pipeline keeps the smallest k whose recommendations hold ``keep`` of the dense
model's validation NDCG@10. Atoms that stop firing are re-pointed at what the code misses
(resampling, as in Bricken et al. 2023), so the K atoms describe K interests.

Encoding a user takes two steps: the encoder picks the k atoms (one pass), then their weights are
re-fitted to that user (``refine_weights``). The same KL is convex in the weights on a fixed set
of atoms, so a few projected steps close most of what a one-pass encoder leaves (the amortisation
gap): on Beauty the code keeps 98.4-99.3% of test NDCG@10 against 92-94% without (docs/benchmarks.md,
"Sparse interest codes with re-fitted weights").

An atom is described by the items its direction raises most (the top of ``A_k E^T``) and by the
share of user states it is active in; a user's interests are their active atoms, largest first.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from safetensors.numpy import load_file, save_file

from lmrec.data.sequences import Interactions, Sequences
from lmrec.errors import ConfigError
from lmrec.models.base import Recommender, Validator, VectorScorer

CODES_FILE = "codes.safetensors"
ATOMS_FILE = "interests.json"
# Settings from the ML-1M screen in docs/benchmarks.md ("Sparse interest codes"): at equal time,
# lr 1e-2 with batches of 256 and one k per step kept the most validation NDCG@10.
LR = 1e-2
BATCH = 256
PACE_STEPS = 50  # steps timed before the number of steps the time cap allows is fixed
RESAMPLE_EVERY = 500  # steps; an atom silent for that long is pointed at what the code misses
STATES_PER_USER = 10  # cap of fitting states per user (small data fits in seconds)
SAMPLE_ABOVE = 4096  # items; larger catalogues train on a sampled subset per step
SAMPLED_TOP, SAMPLED_RANDOM = 50, 2048  # per state: its dense top items; per step: random items
# Re-fitting the weights of a user's atoms (Beauty screen in docs/benchmarks.md): Adam steps of
# 0.1 times the encoder's mean weight, so that the step is scale-free across models.
REFINE_LR = 0.1
REFINE_CHUNK = 512  # users per re-fit: (chunk, n_items) scores in memory
REFINE_PACE_S = 4e-9  # seconds per user x item x step of the re-fit, 2 threads of the development box


def refit_seconds(users: int, items: int, steps: int) -> float:
    """What re-fitting ``users`` codes' weights over ``items`` takes (a budget estimate)."""
    return REFINE_PACE_S * users * items * steps


class InterestCodesConfig(BaseModel):
    """Sparse interest codes of a run (vector models: sasrec, sasrec-text, dnn)."""

    model_config = ConfigDict(extra="forbid")

    atoms: int = Field(128, ge=0, description="K, the interest atoms learned per run; 0 turns interest codes off")
    active: int | Literal["auto"] = Field(
        "auto", description="atoms active per user (k); auto: the smallest of active_grid whose recommendations keep "
        "`keep` of the dense model's validation NDCG@10")
    active_grid: list[int] = Field(default_factory=lambda: [8, 16, 32],
                                   description="the k values one fit trains and auto chooses from")
    keep: float = Field(0.97, gt=0, le=1, description="share of the dense validation NDCG@10 auto must keep (0.97: a "
                        "margin over the 95% target for the difference between validation and test)")
    top_items: int = Field(10, ge=1, description="items listed per atom")
    states: int = Field(20_000, ge=1, description="user states the codes are fit on (at most 10 per user): every "
                        "training history and random prefixes of them, so short histories are represented")
    epochs: int = Field(100, ge=1, description="passes over the states")
    max_seconds: float = Field(60.0, gt=0, description="wall-time cap of one fit (a run fits twice: for the "
                               "evaluated and for the served model)")
    refine_steps: int = Field(20, ge=0, description="per user, steps that re-fit the weights of the atoms the "
                              "encoder picked so that the code ranks the whole catalogue like the dense state "
                              "(0: the encoder's weights as they are)")
    state_l1: float = Field(0.0, ge=0, description="a regulariser of the model itself, not of the codes: an L1 "
                            "penalty on its user states during training (mean |state| times this weight)")

    @field_validator("active_grid")
    @classmethod
    def _grid(cls, v: list[int]) -> list[int]:
        if not v or any(x < 1 for x in v) or sorted(set(v)) != v:
            raise ValueError("must be a non-empty increasing list of positive integers")
        return v

    def grid(self) -> list[int]:
        """The k values one fit trains: the grid, or the one fixed k."""
        ks = self.active_grid if self.active == "auto" else [self.active]
        return [min(k, self.atoms) for k in ks]


class SparseAutoencoder(torch.nn.Module):
    """The code works on states divided by ``scale`` (their mean centred norm at fitting), so that
    Adam's fixed step size means the same to every model: unscaled, sasrec-text's 512-wide states
    lost most atoms during the fit (docs/benchmarks.md, "Sparse interest codes on unit-norm states")."""

    def __init__(self, dim: int, atoms: int) -> None:
        super().__init__()
        self.encoder = torch.nn.Linear(dim, atoms)
        self.atoms = torch.nn.Parameter(torch.empty(atoms, dim))  # (K, D) in scaled units
        self.center = torch.nn.Parameter(torch.zeros(dim))  # (D,) in scaled units
        self.register_buffer("scale", torch.ones(()))

    def code(self, u: torch.Tensor, k: int) -> torch.Tensor:
        """u (B, D) -> z (B, K), non-negative with at most k non-zero entries per row."""
        pre = F.relu(self.encoder(u / self.scale - self.center))  # (B, K)
        top = torch.topk(pre, k, dim=1)
        return torch.zeros_like(pre).scatter(1, top.indices, top.values)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (self.center + z @ self.atoms) * self.scale  # (B, D) in the model's units


def resample_dead(net: SparseAutoencoder, residuals: torch.Tensor, dead: torch.Tensor, gen: torch.Generator) -> None:
    """Point atoms that stopped firing at what the code currently misses (``residuals`` (B, D)
    of a batch), so that K atoms end up describing K interests rather than a few dozen."""
    n = int(dead.sum())
    if n == 0:
        return
    pick = residuals[torch.randint(0, len(residuals), (n,), generator=gen)] / net.scale  # (n, D) scaled units
    direction = F.normalize(pick, dim=1)
    with torch.no_grad():
        net.atoms[dead] = direction * pick.norm(dim=1, keepdim=True)
        net.encoder.weight[dead] = direction
        net.encoder.bias[dead] = 0.0


def refine_weights(z: torch.Tensor, u: torch.Tensor, net: SparseAutoencoder, items: torch.Tensor,
                   steps: int) -> torch.Tensor:
    """Re-fit the non-zero weights of codes ``z`` (B, K) to their states ``u`` (B, D): minimise
    KL(softmax(u E^T) || softmax(u_hat E^T)) over every item (``items``: E, (n_items, D)), the
    weights kept non-negative and on the encoder's atoms (the support never grows).

    With s = u_hat E^T the KL is logsumexp(s) - p.s + const (p = softmax(u E^T)): convex in the
    weights, as s is linear in them, and its gradient in s is softmax(s) - p, so the steps need no
    autograd (2-3x faster than it). Projected Adam steps from the encoder's weights approach the
    best weights of those atoms."""
    if steps == 0 or len(z) == 0:
        return z
    out = []
    with torch.inference_mode():
        atoms = net.atoms * net.scale  # (K, D) in the model's units, for the gradient
        for s in range(0, len(z), REFINE_CHUNK):
            w = z[s : s + REFINE_CHUNK].clone()  # (b, K)
            on = (w > 0).float()  # (b, K) the encoder's support
            p = torch.softmax(u[s : s + REFINE_CHUNK] @ items.T, dim=1)  # (b, n_items)
            opt = torch.optim.Adam([w], lr=REFINE_LR * (float(w[w > 0].mean()) if on.any() else 1.0))
            for _ in range(steps):
                q = torch.softmax(net.decode(w) @ items.T, dim=1)  # (b, n_items); w is 0 off the support
                w.grad = ((q - p) @ items @ atoms.T) * on  # (b, K) dKL/dw, summed over rows (each its own problem)
                opt.step()
                w.clamp_(min=0)
            out.append(w.detach())
    return torch.cat(out)


def _top_items(u: torch.Tensor, items: torch.Tensor, m: int, chunk: int = 4096) -> torch.Tensor:
    """(N, m) each state's m highest-scoring items."""
    return torch.cat([torch.topk(u[s : s + chunk] @ items.T, m, dim=1).indices for s in range(0, len(u), chunk)])


def training_states(histories: Sequences, n_states: int, rng: np.random.Generator) -> Sequences:
    """Every history whole, then random prefixes of random histories up to ``n_states`` rows in all."""
    histories = histories.take(np.flatnonzero(histories.lengths() > 0))
    extra = max(0, n_states - len(histories))
    if extra == 0:
        return histories.take(rng.choice(len(histories), n_states, replace=False))
    rows = rng.integers(0, len(histories), extra)
    cut = (rng.random(extra) * histories.lengths()[rows]).astype(np.int64) + 1  # 1 .. length
    return Sequences.concat(histories, histories.take(rows).prefixes(cut))


@dataclass
class InterestCodes:
    """A fitted sparse code of one model's user states, with its atoms described."""

    net: SparseAutoencoder
    active: int  # k used to encode users
    atom_items: np.ndarray  # (K, top_items) item indices each atom raises most
    atom_usage: np.ndarray  # (K,) share of the fitting states whose code uses the atom
    fit_info: dict
    refine_steps: int = 0  # weight re-fitting steps per user at encoding (0: the encoder's weights)
    states: torch.Tensor | None = None  # (N, D) the states it was fit on (not saved): atom usage is counted on them

    @classmethod
    def fit(cls, model: Recommender, histories: Sequences, config: InterestCodesConfig, *, seed: int = 0,
            log=None) -> Self:
        """Fit on ``histories`` (the model's training histories) and describe the atoms."""
        if not isinstance(model, VectorScorer):
            raise ConfigError(f"interests: model {model.name!r} does not score by user and item vectors; interest "
                              "codes apply to sasrec, sasrec-text and dnn (set interests.atoms = 0 to turn them off)")
        if config.atoms < 1:
            raise ConfigError("interests.atoms is 0: interest codes are off")
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        states = training_states(histories, min(config.states, STATES_PER_USER * len(histories)), rng)
        with torch.inference_mode():
            u, items = model.query_vectors(states).float(), model.output_item_vectors().float()
        u, items = u.clone(), items.clone()  # (N, D), (n_items, D): tensors autograd may use
        net = SparseAutoencoder(u.shape[1], config.atoms)
        with torch.no_grad():
            # Atoms start as (centred, unit) states of random users, encoder as their transpose:
            # every atom fires for someone from the first step, so few die.
            mean = u.mean(0)  # (D,)
            net.scale.fill_(float((u - mean).norm(dim=1).mean().clamp(min=1e-6)))
            net.center.copy_(mean / net.scale)
            init = F.normalize(u[torch.from_numpy(rng.choice(len(u), config.atoms, replace=len(u) < config.atoms))]
                               / net.scale - net.center, dim=1)
            net.atoms.copy_(init)
            net.encoder.weight.copy_(init)
            net.encoder.bias.zero_()
        grid = config.grid()
        batch = min(BATCH, len(u))
        steps = max(1, config.epochs * len(u) // batch)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        gen = torch.Generator().manual_seed(seed)
        last_fired = torch.zeros(config.atoms, dtype=torch.long)
        tops = _top_items(u, items, SAMPLED_TOP) if len(items) > SAMPLE_ABOVE else None  # (N, M) or None
        done, losses, t_loop = 0, [], time.perf_counter()
        for done in range(1, steps + 1):  # noqa: B007 - steps actually run are reported
            rows = torch.randint(0, len(u), (batch,), generator=gen)
            cand = items
            if tops is not None:
                # Large catalogues: the KL over the batch's dense top items and a random sample of
                # the rest (the same subset on both sides), several times cheaper than every item.
                pick = torch.cat([tops[rows].flatten(), torch.randint(0, len(items), (SAMPLED_RANDOM,), generator=gen)])
                cand = items[torch.unique(pick)]  # (S, D)
            target = F.log_softmax(u[rows] @ cand.T, dim=1)  # (B, S)
            # One k of the grid per step: at equal time this beats summing every k's loss (more steps).
            k = grid[int(torch.randint(0, len(grid), (1,), generator=gen))]
            z = net.code(u[rows], k)  # (B, K)
            recon = net.decode(z)  # (B, D)
            predicted = F.log_softmax(recon @ cand.T, dim=1)  # (B, S)
            loss = F.kl_div(predicted, target, log_target=True, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            last_fired[(z > 0).any(0)] = done
            if done == PACE_STEPS:  # the time cap binds: plan the steps it allows (the schedule needs an end)
                per_step = (time.perf_counter() - t_loop) / done
                steps = min(steps, max(done + 1, int((config.max_seconds - (t_loop - t0)) / per_step)))
            # A cosine decay to zero at the end, and no resampling in the last 30% so that re-pointed
            # atoms settle. With the steps fixed, a fit is deterministic under its seed.
            progress = done / steps
            if progress >= 1:
                break
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * progress))
            if done % RESAMPLE_EVERY == 0 and progress < 0.7:
                resample_dead(net, u[rows] - recon.detach(), last_fired < done - RESAMPLE_EVERY, gen)
        net.eval()
        codes = cls(net, grid[-1] if config.active != "auto" else grid[0], np.zeros((config.atoms, 0), np.int64),
                    np.zeros(config.atoms), {"states": len(u), "steps": done, "planned_steps": steps,
                                             "final_kl": float(np.mean(losses[-50:])), "grid": grid},
                    config.refine_steps, u)
        codes._describe(items, config.top_items)
        codes.fit_info["seconds"] = round(time.perf_counter() - t0, 1)
        if log:
            log(f"interest codes: {config.atoms} atoms fit on {len(u):,} user states, {done:,} steps, "
                f"KL {codes.fit_info['final_kl']:.3f}, {codes.fit_info['seconds']:.0f}s")
        return codes

    def _describe(self, items: torch.Tensor, top: int) -> None:
        with torch.inference_mode():
            raised = self.net.atoms @ items.T  # (K, n_items) what each atom adds to every item's score
            self.atom_items = torch.topk(raised, min(top, items.shape[0]), dim=1).indices.numpy()
        self.set_active(self.active)

    def set_active(self, k: int) -> None:
        """Encode with k atoms per user from now on (usage is recounted when the fitting states are at
        hand, on the encoder's choice of atoms: re-fitting their weights never adds one)."""
        self.active = k
        if self.states is not None:
            self.atom_usage = (self.support(self.states) > 0).float().mean(0).numpy()

    @property
    def n_atoms(self) -> int:
        return self.net.atoms.shape[0]

    def support(self, u: torch.Tensor) -> torch.Tensor:
        """(B, D) user states -> (B, K) the encoder's sparse non-negative codes (one pass)."""
        with torch.inference_mode():
            return self.net.code(u.float(), self.active)

    def encode(self, u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, D) user states -> (B, K) sparse non-negative codes: the encoder's atoms, their weights
        re-fitted against the model's output item vectors ``items`` (n_items, D)."""
        u = u.float()
        return refine_weights(self.support(u), u, self.net, items.float(), self.refine_steps)

    def reconstruct(self, u: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D) user states -> their codes (B, K) and the states rebuilt from them (B, D)."""
        z = self.encode(u, items)
        with torch.inference_mode():
            return z, self.net.decode(z)

    def user_interests(self, model: Recommender, histories: Sequences) -> list[list[tuple[int, float]]]:
        """Per history: its active atoms as (atom, weight), largest first."""
        z = self.encode(model.query_vectors(histories), model.output_item_vectors()).numpy()  # (B, K)
        out = []
        for row in z:
            active = np.flatnonzero(row > 0)
            out.append([(int(a), float(row[a])) for a in active[np.argsort(-row[active], kind="stable")]])
        return out

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().numpy().copy() for k, v in self.net.state_dict().items()}, path / CODES_FILE)
        (path / ATOMS_FILE).write_text(json.dumps({
            "active": self.active, "refine_steps": self.refine_steps, "atom_items": self.atom_items.tolist(),
            "atom_usage": self.atom_usage.tolist(), "fit": self.fit_info}, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        path = Path(path)
        state = {k: torch.from_numpy(v) for k, v in load_file(path / CODES_FILE).items()}
        meta = json.loads((path / ATOMS_FILE).read_text())
        net = SparseAutoencoder(state["atoms"].shape[1], state["atoms"].shape[0])
        state.setdefault("scale", torch.ones(()))  # codes saved before the scaling worked on raw states
        net.load_state_dict(state)
        net.eval()
        # Codes saved before weights were re-fitted had their k chosen without it: they keep encoding so.
        return cls(net, int(meta["active"]), np.asarray(meta["atom_items"], dtype=np.int64),
                   np.asarray(meta["atom_usage"]), meta["fit"], int(meta.get("refine_steps", 0)))


class SparseCoded(Recommender):
    """A fitted vector model whose user states pass through their sparse code before scoring:
    what recommendations from the interests alone look like (evaluated like any model)."""

    name = "sparse-code"

    def __init__(self, model: Recommender, codes: InterestCodes) -> None:
        super().__init__()
        self.base, self.codes, self.n_items = model, codes, model.n_items
        # Atoms active per history scored, in scoring order: re-fitting weights costs many scoring
        # passes, so an evaluation counts sparsity from its own encoding instead of a second one.
        self.atoms_used: list[torch.Tensor] = []

    def fit(self, train: Interactions, valid=None, *, time_budget_s=None) -> Self:
        raise TypeError("SparseCoded wraps a fitted model; fit the model and its InterestCodes instead")

    def _score(self, histories: Sequences) -> torch.Tensor:
        items = self.base.output_item_vectors()  # (n_items, D)
        z, u = self.codes.reconstruct(self.base.query_vectors(histories), items)  # (B, K), (B, D)
        self.atoms_used.append((z > 0).sum(1))
        return u @ items.T  # (B, n_items)

    def _state(self) -> dict[str, np.ndarray]:
        raise TypeError("SparseCoded is not saved; save the model and its InterestCodes")

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        raise TypeError("SparseCoded is not loaded; load the model and its InterestCodes")


def choose_active(model: Recommender, codes: InterestCodes, config: InterestCodesConfig,
                  validator: Validator) -> dict:
    """Pick k (auto: the smallest of the grid keeping ``keep`` of the dense validation NDCG@10,
    else the largest) and return the validation retention of every k tried."""
    dense = float(validator(model))
    tried = {}
    for k in codes.fit_info["grid"]:
        codes.set_active(k)
        tried[k] = float(validator(SparseCoded(model, codes))) / dense if dense > 0 else 0.0
    ks = list(tried)
    chosen = next((k for k in ks if tried[k] >= config.keep), ks[-1]) if config.active == "auto" else ks[-1]
    codes.set_active(chosen)
    return {"dense_valid_ndcg@10": dense, "valid_keep": {str(k): v for k, v in tried.items()}, "active": chosen,
            "keep_target": config.keep} | ({} if config.active == "auto" else {"fixed": True})


def describe_atom(codes: InterestCodes, atom: int, item_ids: list, titles: list[str]) -> dict:
    """An atom's usage share, top item ids and their titles."""
    top = codes.atom_items[atom]
    return {"atom": atom, "usage": round(float(codes.atom_usage[atom]), 4), "item_ids": [item_ids[i] for i in top],
            "titles": [titles[i] for i in top]}


def describe_atoms(codes: InterestCodes, item_ids: list, titles: list[str], limit: int | None = None) -> list[dict]:
    """The atoms that fire for someone, most used first."""
    order = [int(a) for a in np.argsort(-codes.atom_usage, kind="stable") if codes.atom_usage[a] > 0]
    return [describe_atom(codes, a, item_ids, titles) for a in order[:limit]]


def interests_of(codes: InterestCodes, model: Recommender, history: list[int], item_ids: list,
                 titles: list[str]) -> list[dict]:
    """One history's active atoms, largest weight first: weight, share of the code, the atom's description."""
    active = codes.user_interests(model, Sequences.from_lists([list(history)]))[0]
    total = sum(w for _, w in active) or 1.0
    return [{"weight": round(w, 4), "share": round(w / total, 4)} | describe_atom(codes, a, item_ids, titles)
            for a, w in active]


def interests_markdown(section: dict) -> list[str]:
    """The run report's "Interests" section: sparsity, what the codes keep, the most used atoms."""
    m, test = section["metric"], section["test"]
    lines = ["", "## Interests (sparse codes)", "",
             f"Each user's state as at most k={section['active']} of {section['atoms']} learned interest atoms "
             f"({section['live_atoms']} fire for someone); test users use {section['atoms_per_user']:.1f} on average. "
             "Recommending from the code alone keeps "
             + (f"{section['test_keep']:.1%}" if section["test_keep"] is not None else "- (no test users)")
             + f" of the model's test {m}"
             + (f" (k chosen on validation: the smallest keeping {section['keep_target']:.0%})"
                if "keep_target" in section else "") + ".", "",
             f"| users | dense {m} | from the code | kept |", "|---|---|---|---|"]
    for bucket, d in test["dense"].items():
        s = test["sparse"][bucket]
        lines.append(f"| {bucket} | {_fmt(d)} | {_fmt(s)} | " + (f"{s / d:.1%}" if d and s is not None else "-") + " |")
    if section.get("valid_keep"):
        lines += ["", "Validation share kept by atoms per user: "
                  + ", ".join(f"k={k}: {v:.1%}" for k, v in section["valid_keep"].items())]
    if section.get("atoms_described"):
        lines += ["", "Most used atoms of the served model (share of user states they are active in; the items "
                  "each raises most):", "", "| atom | users | top items |", "|---|---|---|"]
        for a in section["atoms_described"]:
            names = [t or str(i) for t, i in zip(a["titles"], a["item_ids"], strict=True)][:5]
            lines.append(f"| {a['atom']} | {a['usage']:.1%} | {'; '.join(names)} |")
    return lines


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"
