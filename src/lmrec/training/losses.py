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
