"""Next-item losses as pure functions of logits.

All take the scores of the positions that have a target (padding already removed) and return
a scalar mean loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def full_softmax_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the whole catalogue. logits (N, n_items), targets (N,) item indices."""
    return F.cross_entropy(logits.float(), targets)


def sampled_softmax_ce(pos_logits: torch.Tensor, neg_logits: torch.Tensor,
                       accidental_hits: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the target and M sampled negatives; the target is class 0.

    pos_logits (N,), neg_logits (N, M); ``accidental_hits`` (N, M) marks negatives that are the
    target itself, which are masked out rather than pushed down.
    """
    neg = neg_logits.float()
    if accidental_hits is not None:
        neg = neg.masked_fill(accidental_hits, float("-inf"))
    logits = torch.cat([pos_logits.float().unsqueeze(1), neg], dim=1)  # (N, 1 + M)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def bce_one_negative(pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with one negative per target, as in the original SASRec.

    pos_logits (N,), neg_logits (N,): -log sigmoid(pos) - log(1 - sigmoid(neg)).
    """
    return (F.softplus(-pos_logits.float()) + F.softplus(neg_logits.float())).mean()


def _chunked_ce_forward(ctx, hidden, weights, targets, chunk):  # hidden (N, D), weights (V, D), targets (N,)
    n = len(targets)
    lse = torch.empty(n, dtype=torch.float32, device=hidden.device)  # (N,)
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for s in range(0, n, chunk):
        logits = (hidden[s : s + chunk] @ weights.T).float()  # (C, V)
        lse[s : s + chunk] = torch.logsumexp(logits, dim=1)
        total += (lse[s : s + chunk] - logits.gather(1, targets[s : s + chunk, None]).squeeze(1)).sum()
    ctx.save_for_backward(hidden, weights, targets, lse)
    ctx.chunk = chunk
    return total / max(n, 1)


def _chunked_ce_backward(ctx, grad):
    hidden, weights, targets, lse = ctx.saved_tensors
    n, chunk = len(targets), ctx.chunk
    grad_h = torch.empty_like(hidden)  # (N, D)
    grad_w = torch.zeros(weights.shape, dtype=torch.float32, device=weights.device)  # (V, D)
    scale = grad / max(n, 1)
    for s in range(0, n, chunk):
        h = hidden[s : s + chunk]  # (C, D)
        p = ((h @ weights.T).float() - lse[s : s + chunk, None]).exp_()  # (C, V) softmax
        p[torch.arange(len(h), device=p.device), targets[s : s + chunk]] -= 1.0
        p *= scale
        grad_h[s : s + chunk] = (p @ weights).to(hidden.dtype)  # autocast: bf16 matmul when enabled
        grad_w += (p.T @ h).float()
    return grad_h, grad_w.to(weights.dtype), None, None


def _chunked_ce(device_type: str) -> type[torch.autograd.Function]:
    """Full-softmax CE of ``hidden @ weights.T`` without keeping the (N, n_items) logits.

    The logits are made chunk by chunk in the forward pass (only each row's logsumexp is kept)
    and made again in the backward pass, where softmax - onehot is turned straight into the
    gradients of ``hidden`` and ``weights``. One extra matmul buys never writing or reading the
    whole logit matrix, which is what bounds full CE on a CPU (memory traffic, not FLOPs).
    One class per device type: the backward pass runs under the forward's autocast state of
    that device (bf16 ``hidden`` meets float32 softmax rows there).
    """
    return type(f"ChunkedSoftmaxCE_{device_type}", (torch.autograd.Function,), {
        "forward": staticmethod(torch.amp.custom_fwd(device_type=device_type)(_chunked_ce_forward)),
        "backward": staticmethod(torch.amp.custom_bwd(device_type=device_type)(_chunked_ce_backward))})


_CHUNKED_CE = {"cpu": _chunked_ce("cpu"), "cuda": _chunked_ce("cuda")}
# Rows per chunk: small on a CPU (the (C, V) block stays in cache), large on a GPU (fewer launches).
CHUNK_ROWS = {"cpu": 256, "cuda": 8192}


def chunked_softmax_ce(hidden: torch.Tensor, weights: torch.Tensor, targets: torch.Tensor,
                       chunk: int | None = None) -> torch.Tensor:
    """``full_softmax_ce(hidden @ weights.T, targets)`` in chunks of rows; same value and gradients.

    hidden (N, D), weights (n_items, D), targets (N,) item indices. Any device: meta tensors
    (device checks in the tests) take the CPU's class.
    """
    kind = hidden.device.type if hidden.device.type in _CHUNKED_CE else "cpu"
    return _CHUNKED_CE[kind].apply(hidden, weights, targets, chunk or CHUNK_ROWS[kind])


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 1.0, cosine: bool = False) -> torch.Tensor:
    """InfoNCE (NT-Xent, as in CL4SRec / DuoRec) between two views: a, b (B, D), row i of each
    is the same user. Each of the 2B vectors must pick its partner among the other 2B - 1 by
    similarity / temperature (dot product, or with ``cosine`` the cosine, as in SimCLR); the
    mean cross-entropy over the 2B vectors."""
    z = torch.cat([a, b]).float()  # (2B, D)
    if cosine:
        z = F.normalize(z, dim=1)
    n = len(a)
    sim = (z @ z.T) / temperature  # (2B, 2B)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)  # (2B,)
    return F.cross_entropy(sim, partner)


def window_ce(net, window: torch.Tensor) -> torch.Tensor:
    """One user's next-item loss: the mean full-softmax CE over the positions of ``window``
    (L + 1,) tokens (left-padded with 0) of a sequential network (``lmrec.models.sequential``).
    Free of data-dependent shapes, so ``torch.func.vmap`` maps it over users (DP-SGD)."""
    inputs, targets = window[None, :-1], window[None, 1:]  # (1, L) each
    table = net.item_table()  # (n_items + 1, D)
    hidden = net(inputs, table)[0]  # (L, D)
    logits = (hidden @ net.item_weights(table).T).float()  # (L, n_items)
    valid = ((targets[0] != 0) & (inputs[0] != 0)).float()  # (L,)
    ce = F.cross_entropy(logits, (targets[0] - 1).clamp(min=0), reduction="none")  # (L,)
    return (ce * valid).sum() / valid.sum().clamp(min=1.0)

