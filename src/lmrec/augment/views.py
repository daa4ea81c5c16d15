"""Stochastic views of left-padded token sequences (CL4SRec: crop, mask, reorder; CoSeRec:
substitute), vectorised over the batch.

Every function takes ``tokens`` (B, L), left-padded with 0 (the real events of a row are its last
n columns), and returns a new (B, L) tensor in the same layout; rows with no events stay empty.
"""

from __future__ import annotations

import torch


def _lengths(tokens: torch.Tensor) -> torch.Tensor:
    return (tokens != 0).sum(dim=1)  # (B,)


def _uniform(shape, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator)


def crop(tokens: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A contiguous run of max(1, floor(ratio * n)) events at a random offset, right-aligned."""
    B, L = tokens.shape
    n = _lengths(tokens)  # (B,)
    c = torch.clamp((ratio * n).floor().long(), min=1)  # (B,) kept events
    start = (_uniform(B, generator) * (n - c + 1)).floor().long()  # (B,) offset within the events
    j = torch.arange(L)[None, :]  # (1, L)
    # Output column j >= L - c holds event start + (j - (L - c)), which sits at column L - n + that.
    src = ((L - n + start - (L - c))[:, None] + j).clamp(0, L - 1)  # (B, L) source column
    out = tokens.gather(1, src)
    return torch.where((j >= L - c[:, None]) & (n[:, None] > 0), out, torch.zeros_like(out))


def mask(tokens: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each event hidden with probability ``ratio``: replaced by padding, which attention ignores
    (SASRec has no [mask] token; a hidden event is one the encoder cannot see)."""
    hide = (_uniform(tokens.shape, generator) < ratio) & (tokens != 0)  # (B, L)
    return tokens.masked_fill(hide, 0)


def reorder(tokens: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A contiguous run of max(1, floor(ratio * n)) events shuffled in place."""
    B, L = tokens.shape
    n = _lengths(tokens)
    r = torch.clamp((ratio * n).floor().long(), min=1)  # (B,) shuffled events
    start = L - n + (_uniform(B, generator) * (n - r + 1)).floor().long()  # (B,) first shuffled column
    j = torch.arange(L, dtype=torch.float32)[None, :].expand(B, L)  # (B, L)
    inside = (j >= start[:, None]) & (j < (start + r)[:, None])
    # Sort keys: columns outside the run keep their index; inside, a random key within the run's span.
    keys = torch.where(inside, start[:, None] + _uniform((B, L), generator) * r[:, None].float() - 0.5, j)
    return tokens.gather(1, keys.argsort(dim=1, stable=True))


def substitute(tokens: torch.Tensor, ratio: float, neighbour: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Each event replaced by its nearest content neighbour with probability ``ratio``.
    ``neighbour`` (n_items + 1,) maps a token to its neighbour's token (neighbour[0] = 0)."""
    swap = (_uniform(tokens.shape, generator) < ratio) & (tokens != 0)
    return torch.where(swap, neighbour[tokens], tokens)
