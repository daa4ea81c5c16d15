"""What a model hands to the edge export (``lmrec export``): every exportable model scores
``query(history) @ item_vectors.T``, with a query that a small torch module computes from the
history's tokens and a few per-token tables. The module becomes an ONNX graph; the tables and the
item vectors travel beside it as arrays, so a device can append rows for items added later.

Tokens are the item index + 1, left-padded with 0 (the models' own convention); every table has
a row per token, row 0 for padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class EdgeParts:
    encoder: nn.Module  # forward(tokens (B, L) int64, *tables in ``tables`` order) -> query (B, D)
    tables: dict[str, np.ndarray]  # name -> (n_items + 1, *) float32 rows per token, row 0 padding
    items: np.ndarray  # (n_items, D) float32: scores = query @ items.T
    max_len: int | None  # most recent events the query reads (None: the whole history)


class LastState(nn.Module):
    """A next-item network's state after the latest event: tokens (B, L), table (n + 1, D) -> (B, D)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return self.net(tokens, table, last_only=True)[:, -1]


def decayed_sum(tokens: torch.Tensor, vectors: torch.Tensor, decay: float, events: int) -> torch.Tensor:
    """tokens (B, L), vectors (n + 1, T) with a zero padding row -> (B, T): the j-th most recent
    event weighted decay**j, events older than ``events`` weighted 0 (``recency_profile`` on tokens).

    The window is a mask rather than a slice so that the graph keeps one dynamic length."""
    L = tokens.shape[1]
    lag = (L - 1 - torch.arange(L, device=tokens.device)).float()  # (L,) 0 for the latest event
    w = torch.where(lag < events, torch.pow(torch.full_like(lag, decay), lag), torch.zeros_like(lag))  # (L,)
    return torch.einsum("l,bld->bd", w, vectors[tokens])


class LastStateWithProfile(nn.Module):
    """sasrec-text's query: the Transformer state over the last ``max_len`` events next to the
    weighted text-knn profile of the last ``events``: tokens, table, text -> (B, D + T)."""

    def __init__(self, net: nn.Module, max_len: int, weight: float, decay: float, events: int) -> None:
        super().__init__()
        self.net, self.max_len, self.weight, self.decay, self.events = net, max_len, weight, decay, events

    def forward(self, tokens: torch.Tensor, table: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        # Left padding is masked in the network, so reading the whole window and masking the
        # state's input to max_len would cost more; a slice of a left-padded row is still one.
        state = self.net(tokens[:, -self.max_len :], table, last_only=True)[:, -1]  # (B, D)
        return torch.cat([state, self.weight * decayed_sum(tokens, text, self.decay, self.events)], dim=1)


class Profile(nn.Module):
    """text-knn's query: the recency-weighted sum of the history's unit text vectors."""

    def __init__(self, decay: float, events: int) -> None:
        super().__init__()
        self.decay, self.events = decay, events

    def forward(self, tokens: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return decayed_sum(tokens, text, self.decay, self.events)


class MultiHot(nn.Module):
    """Item-item models' query: the history as a 0/1 vector over the catalogue, tokens -> (B, n)."""

    def forward(self, tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        # table (n + 1, 1) is all ones: it carries the catalogue size into the graph, so items
        # added on the device widen the query with it.
        hot = torch.zeros(tokens.shape[0], table.shape[0], dtype=table.dtype)  # (B, n + 1)
        hot = hot.scatter(1, tokens, torch.ones_like(tokens, dtype=table.dtype))
        return hot[:, 1:]


class Constant(nn.Module):
    """Popularity's query: 1 for everyone (its item vector is the item's count)."""

    def forward(self, tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return torch.ones(tokens.shape[0], 1, dtype=table.dtype)


def padded(rows: np.ndarray) -> np.ndarray:
    """(n, T) per-item rows -> (n + 1, T) per-token rows with a zero padding row, float32."""
    rows = np.asarray(rows, dtype=np.float32)
    return np.concatenate([np.zeros((1, *rows.shape[1:]), np.float32), rows])

