"""Virtual users from a generative adversarial network, and how much they resemble real ones.

Generator: a GRU language model over items that writes a whole history autoregressively (no
item twice in a history, only items with training events), its length drawn from the real
length distribution. It is first fitted by maximum likelihood on real training histories, then
trained against a discriminator (a GRU that tells real from generated histories) by policy
gradient (REINFORCE with a mean baseline, SeqGAN without roll-outs), keeping the likelihood term
so it does not drift from the data. Virtual users that copy a real one (Jaccard overlap above
``MAX_JACCARD`` with any real training user) are dropped and replaced.

Quality (:func:`quality`): the AUC of a discriminator trained afresh on real users the generator
never saw vs virtual users (0.5: indistinguishable), the KS distance between the length and the
item-popularity distributions, item coverage, and each virtual user's highest Jaccard overlap
with a real user.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy import stats
from torch import nn

from lmrec.augment.config import GanConfig
from lmrec.data.sequences import Sequences
from lmrec.evaluation.metrics import auc
from lmrec.training.losses import chunked_softmax_ce

MAX_LEN = 50  # the generator writes and reads at most this many events (a history's most recent)
WIDTH = 64
BATCH = 128
HELD_OUT = 0.1  # share of real users kept from the generator: the fresh discriminator's real examples
MAX_JACCARD = 0.8  # a virtual user this close to a real one is a copy (a privacy leak): dropped
DEFAULT_SECONDS = 300.0
MIN_LIKELIHOOD_STEPS = 500
MAX_ADVERSARIAL_ROUNDS = 1000
ADVERSARIAL_LR = 2e-4


def _right_padded(seqs: Sequences, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) tokens (item + 1, right-padded with 0, each row's most recent max_len events) and (B,) lengths."""
    left = seqs.to_padded(max_len, pad=-1) + 1  # (B, T) left-padded
    lengths = (left != 0).sum(axis=1)
    order = np.argsort(left == 0, axis=1, kind="stable")  # real tokens first, in order
    right = np.take_along_axis(left, order, axis=1)
    width = max(1, int(lengths.max())) if len(lengths) else 1
    return torch.from_numpy(right[:, :width]), torch.from_numpy(lengths)


class Generator(nn.Module):
    def __init__(self, n_items: int, width: int = WIDTH) -> None:
        super().__init__()
        self.emb = nn.Embedding(n_items + 1, width)  # token 0: start of history
        self.gru = nn.GRU(width, width, batch_first=True)
        self.out = nn.Linear(width, n_items, bias=False)

    def nll(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-item cross-entropy of right-padded ``tokens`` (B, T) under teacher forcing."""
        inputs = torch.cat([torch.zeros_like(tokens[:, :1]), tokens[:, :-1]], dim=1)  # (B, T) start token first
        h, _ = self.gru(self.emb(inputs))  # (B, T, W)
        real = tokens != 0
        return chunked_softmax_ce(h[real], self.out.weight, tokens[real] - 1)

    def sample(self, lengths: torch.Tensor, blocked: torch.Tensor, generator: torch.Generator,
               temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Histories of the given (B,) lengths: right-padded tokens (B, T) and each history's log-probability (B,)."""
        B, T = len(lengths), int(lengths.max())
        tokens = torch.zeros(B, T, dtype=torch.long)
        logp = torch.zeros(B)
        used = blocked[None, :].repeat(B, 1)  # (B, n_items): not allowed or already written
        x, state = torch.zeros(B, dtype=torch.long), None
        for t in range(T):
            h, state = self.gru(self.emb(x)[:, None], state)  # (B, 1, W)
            logits = (self.out(h[:, 0]) / temperature).masked_fill(used, -torch.inf)  # (B, n_items)
            log_probs = torch.log_softmax(logits, dim=1)
            item = torch.multinomial(log_probs.exp().detach(), 1, generator=generator)[:, 0]  # (B,)
            active = t < lengths
            logp = logp + torch.where(active, log_probs.gather(1, item[:, None])[:, 0], 0.0)
            tokens[:, t] = torch.where(active, item + 1, 0)
            used = used.scatter(1, item[:, None], True)  # a new tensor: the old one is in the graph
            x = item + 1
        return tokens, logp


class Discriminator(nn.Module):
    """P(real) of a right-padded history: a GRU's state after the history's last event."""

    def __init__(self, n_items: int, width: int = WIDTH) -> None:
        super().__init__()
        self.emb = nn.Embedding(n_items + 1, width, padding_idx=0)
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, 1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # (B, T), (B,) -> logits (B,)
        h, _ = self.gru(self.emb(tokens))  # (B, T, W)
        last = h[torch.arange(len(tokens)), (lengths - 1).clamp(min=0)]  # (B, W)
        return self.head(last)[:, 0]


def _batches(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i : i + BATCH] for i in range(0, n, BATCH)]


def train_generator(real: Sequences, n_items: int, allowed: np.ndarray, budget_s: float, seed: int) -> tuple[
        Generator, dict]:
    """Likelihood phase (up to half the budget: 30 epochs and at least MIN_LIKELIHOOD_STEPS steps),
    then adversarial rounds (at most MAX_ADVERSARIAL_ROUNDS) for the rest, at a lower learning rate."""
    torch.manual_seed(seed)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    tokens, lengths = _right_padded(real, MAX_LEN)
    G, D = Generator(n_items), Discriminator(n_items)
    opt_g, opt_d = torch.optim.Adam(G.parameters(), lr=2e-3), torch.optim.Adam(D.parameters(), lr=1e-3)
    blocked = torch.from_numpy(~allowed)
    bce = nn.BCEWithLogitsLoss()
    t0, epochs, steps, rounds = time.perf_counter(), 0, 0, 0
    while (epochs < 30 or steps < MIN_LIKELIHOOD_STEPS) and time.perf_counter() - t0 < budget_s / 2:
        for rows in _batches(len(tokens), rng):
            steps += 1
            batch = tokens[rows][:, : int(lengths[rows].max())]
            loss = G.nll(batch)
            opt_g.zero_grad()
            loss.backward()
            opt_g.step()
        epochs += 1
    mle = float(loss.detach())
    for group in opt_g.param_groups:
        group["lr"] = ADVERSARIAL_LR
    d_loss = reward = float("nan")
    while rounds < MAX_ADVERSARIAL_ROUNDS and time.perf_counter() - t0 < budget_s:
        rows = rng.choice(len(tokens), BATCH)
        real_tok, real_len = tokens[rows], lengths[rows]
        fake_len = lengths[rng.choice(len(tokens), BATCH)]
        fake_tok, logp = G.sample(fake_len, blocked, gen)
        # Discriminator: real 1, generated 0.
        logits = torch.cat([D(real_tok, real_len), D(fake_tok, fake_len)])
        d = bce(logits, torch.cat([torch.ones(BATCH), torch.zeros(BATCH)]))
        opt_d.zero_grad()
        d.backward()
        opt_d.step()
        # Generator: REINFORCE on the discriminator's P(real), per event, plus the likelihood anchor.
        with torch.no_grad():
            r = torch.sigmoid(D(fake_tok, fake_len))  # (B,)
        advantage = (r - r.mean()) / fake_len.float()
        g = -(advantage * logp).mean() + G.nll(real_tok[:, : int(real_len.max())])
        opt_g.zero_grad()
        g.backward()
        opt_g.step()
        d_loss, reward, rounds = float(d.detach()), float(r.mean()), rounds + 1
    return G.eval(), {"likelihood_epochs": epochs, "likelihood_loss": round(mle, 4), "adversarial_rounds": rounds,
                      "discriminator_loss": round(d_loss, 4), "mean_p_real": round(reward, 4),
                      "seconds": round(time.perf_counter() - t0, 1)}


def generate(G: Generator, n: int, length_pool: np.ndarray, allowed: np.ndarray, seed: int) -> Sequences:
    """``n`` histories (item indices, oldest first), lengths drawn from ``length_pool``."""
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    blocked = torch.from_numpy(~allowed)
    rows: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, n, 512):
            lengths = torch.from_numpy(np.minimum(rng.choice(length_pool, min(512, n - start)), MAX_LEN))
            tokens, _ = G.sample(lengths, blocked, gen)
            rows += [tokens[j, : int(lengths[j])].numpy() - 1 for j in range(len(lengths))]
    return Sequences.from_lists(rows)


def max_jaccard(virtual: Sequences, real: Sequences, n_items: int) -> np.ndarray:
    """(V,) each virtual history's highest Jaccard overlap (as item sets) with any real history."""
    v, r = virtual.to_matrix(n_items), real.to_matrix(n_items)
    v_size, r_size = np.asarray(v.sum(axis=1)).ravel(), np.asarray(r.sum(axis=1)).ravel()
    out = np.zeros(v.shape[0])
    for s in range(0, v.shape[0], 500):
        inter = (v[s : s + 500] @ r.T).toarray()  # (C, R) shared items
        union = v_size[s : s + 500, None] + r_size[None, :] - inter
        out[s : s + 500] = (inter / np.maximum(union, 1)).max(axis=1)
    return out


def fresh_discriminator_auc(real: Sequences, virtual: Sequences, n_items: int, seed: int, steps: int = 400) -> float:
    """AUC of a new discriminator trained (``steps`` Adam steps, at least 10 epochs) on half of ``real``
    vs half of ``virtual`` and scored on the other halves."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n = min(len(real), len(virtual))
    if n < 2:
        return float("nan")  # too few users to train on one half and score the other
    real, virtual = real.take(rng.permutation(len(real))[:n]), virtual.take(rng.permutation(len(virtual))[:n])
    tokens, lengths = _right_padded(Sequences.concat(real, virtual), MAX_LEN)
    labels = torch.cat([torch.ones(n), torch.zeros(n)])
    # Half of each class to fit, the other half to score: both halves hold real and virtual users.
    fit = np.concatenate([np.arange(n // 2), n + np.arange(n // 2)])
    held = np.setdiff1d(np.arange(2 * n), fit)
    D = Discriminator(n_items)
    opt = torch.optim.Adam(D.parameters(), lr=1e-3)
    for _ in range(max(10, -(-steps // -(-len(fit) // BATCH)))):
        for rows in _batches(len(fit), rng):
            idx = fit[rows]
            loss = nn.functional.binary_cross_entropy_with_logits(D(tokens[idx], lengths[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        scores = D(tokens[held], lengths[held]).numpy()
    return auc(scores, labels[held].numpy())


def _rounded(x: float) -> float | None:
    return None if np.isnan(x) else round(x, 4)


def quality(virtual: Sequences, real_train: Sequences, real_held_out: Sequences, n_items: int, seed: int,
            jaccard: np.ndarray | None = None) -> dict:
    """``jaccard``: ``max_jaccard(virtual, real_train, n_items)`` when the caller already has it."""
    counts = np.bincount(real_train.values, minlength=n_items)  # events per item among real users
    jac = max_jaccard(virtual, real_train, n_items) if jaccard is None else jaccard
    real_items = np.unique(real_train.values)
    return {
        "fresh_discriminator_auc": _rounded(fresh_discriminator_auc(real_held_out, virtual, n_items, seed)),
        "length_ks": round(float(stats.ks_2samp(real_train.lengths(), virtual.lengths()).statistic), 4),
        "popularity_ks": round(float(stats.ks_2samp(counts[real_train.values], counts[virtual.values]).statistic), 4),
        "item_coverage": round(float(np.isin(real_items, virtual.values).mean()), 4),
        "max_jaccard_p50": round(float(np.median(jac)), 4) if jac.size else 0.0,
        "max_jaccard_max": round(float(jac.max()), 4) if jac.size else 0.0,
        "virtual_users_over_0.8": int((jac > MAX_JACCARD).sum()),
    }


def virtual_users(real: Sequences, n_items: int, allowed: np.ndarray, config: GanConfig, *,
                  budget_s: float | None = None, seed: int = 0) -> tuple[Sequences, dict]:
    """Virtual histories learnt from ``real`` (training sequences, item indices), and their quality report.

    ``allowed`` (n_items,): items that may be written (those with training events)."""
    t0 = time.perf_counter()
    users = np.flatnonzero(real.lengths() >= 2)
    rng = np.random.default_rng(seed)
    held = rng.choice(users, max(2, int(HELD_OUT * users.size)), replace=False)
    fit_users = np.setdiff1d(users, held)
    fit_real = real.take(fit_users)
    n = config.users or max(1, users.size // 4)
    G, summary = train_generator(fit_real, n_items, allowed, DEFAULT_SECONDS if budget_s is None else budget_s * 0.85,
                                 seed)
    real_users = real.take(users)
    pool = real_users.lengths()
    virtual, jaccard, dropped, attempt = Sequences.from_lists([]), np.zeros(0), 0, 0
    while len(virtual) < n and attempt < 5:
        batch = generate(G, n - len(virtual), pool, allowed, seed + 1 + attempt)
        jac = max_jaccard(batch, real_users, n_items)
        keep = jac <= MAX_JACCARD
        dropped += int((~keep).sum())
        virtual, jaccard = Sequences.concat(virtual, batch.take(np.flatnonzero(keep))), np.concatenate([jaccard, jac[keep]])
        attempt += 1
    summary |= {"copies_dropped": dropped}
    summary |= quality(virtual, real_users, real.take(held), n_items, seed, jaccard)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    return virtual, summary
