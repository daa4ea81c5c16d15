"""YouTube-DNN style baseline (Covington et al. 2016): pooled history embedding -> MLP -> softmax.

Order-blind inside the pooled window, so it shows what the Transformer's attention adds.
Training reuses the sequential machinery: the prefix mean at every position is a causal
summary, so one forward pass trains all positions of a window at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lmrec.models.base import PrivatelyTrainable
from lmrec.models.layers import Dropout
from lmrec.models.sequential import SequentialConfig, SequentialRecommender


class DNNConfig(SequentialConfig):
    hidden: list[int] = Field(default_factory=lambda: [256], description="MLP hidden layer widths")
    max_len: int = Field(50, ge=1, description="most recent events pooled")


class DNNNet(nn.Module):
    def __init__(self, cfg: DNNConfig, n_items: int) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, cfg.d_model, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=1.0 / math.sqrt(cfg.d_model))
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        layers, width = [], cfg.d_model
        for h in cfg.hidden:
            layers += [nn.Linear(width, h), nn.GELU(), Dropout(cfg.dropout)]
            width = h
        layers.append(nn.Linear(width, cfg.d_model))
        self.mlp = nn.Sequential(*layers)
        self.out_emb = nn.Embedding(n_items, cfg.d_model)  # separate output vectors, as in YouTube-DNN
        nn.init.normal_(self.out_emb.weight, std=1.0 / math.sqrt(cfg.d_model))

    def item_table(self) -> torch.Tensor:
        return self.item_emb.weight  # (n_items + 1, D) input embeddings

    def forward(self, tokens: torch.Tensor, table: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """tokens (B, L) left-padded -> (B, L, D): MLP of the mean embedding of tokens <= t
        (``last_only``: (B, 1, D), the last position only)."""
        e = F.embedding(tokens, self.item_table() if table is None else table, padding_idx=0)  # (B, L, D), 0 at padding
        counts = (tokens != 0).cumsum(dim=1).clamp(min=1).unsqueeze(-1)  # (B, L, 1)
        means = e.cumsum(dim=1) / counts  # (B, L, D)
        return self.mlp(means[:, -1:] if last_only else means)

    def item_weights(self, table: torch.Tensor | None = None) -> torch.Tensor:
        return self.out_emb.weight  # (n_items, D): untied, the input table plays no part


class DNN(SequentialRecommender, PrivatelyTrainable):
    """Mean of the recent history's item embeddings through an MLP, softmax over all items."""

    name = "dnn"
    Config = DNNConfig

    def build_net(self, n_items: int) -> DNNNet:
        return DNNNet(self.config, n_items)
