"""SASRec-family causal Transformer for next-item prediction (Kang & McAuley 2018), with the
choices that make it strong: full-softmax cross-entropy (Klenitskiy & Vasilev 2023),
pre-LayerNorm blocks, item embeddings tied with the output layer.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from lmrec.data.profile import DataProfile
from lmrec.data.sequences import Sequences
from lmrec.models.base import AttendsToHistory, PrivatelyTrainable
from lmrec.models.layers import Dropout
from lmrec.models.sequential import SequentialConfig, SequentialRecommender
from lmrec.training.config import Auto, Positive


class SASRecConfig(SequentialConfig):
    n_layers: int = Field(2, ge=1)
    n_heads: Positive | Auto = Field("auto", description="attention heads (auto: 1 when the median item has >= 100 "
                                     "events, as on ML-1M, else 2)")
    ffn_mult: int = Field(4, ge=1, description="feed-forward width = ffn_mult * d_model")
    attn_dropout: float = Field(
        0.0, ge=0, lt=1, description="dropout on attention weights (costly on a CPU: (B, H, L, L) random masks)")
    positional: Literal["learned", "rotary"] = "learned"
    position_from: Literal["end", "start"] = Field(
        "end", description="learned positions count back from the most recent event (end: encodes recency "
        "only) or forward from the first event in the window (start: also tells how far into their history "
        "a user is); rotary positions are relative, so this does not apply to them")
    block: Literal["pre_ln", "sasrec"] | Auto = Field(
        "auto", description="auto: pre_ln; pre_ln: x + Attn(LN(x)), x + FFN(LN(x)); sasrec: the original SASRec layout, "
        "where the residual stream is the normalised input (q = LN(x); x = q + Attn(q, x, x); "
        "x = LN(x); x + FFN(x)) with ReLU")
    init_std: float = Field(
        0.02, gt=0, description="std of the initial item and position embeddings (1/sqrt(d_model) trained "
        "slower and worse on ML-1M and Beauty: docs/benchmarks.md)")


class RotaryEmbedding(nn.Module):
    """Rotary position embedding applied to queries and keys (Su et al. 2021)."""

    def __init__(self, head_dim: int, max_len: int) -> None:
        super().__init__()
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(max_len).float(), inv_freq)  # (L, hd/2)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, H, L, hd)
        L = x.shape[2]
        cos, sin = self.cos[-L:], self.sin[-L:]  # right-aligned, like the learned positions
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class Block(nn.Module):
    """Transformer block; ``cfg.block`` chooses pre-LayerNorm or the original SASRec layout."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.sasrec_layout = cfg.block == "sasrec"
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        width = cfg.ffn_mult * cfg.d_model
        self.ffn = nn.Sequential(nn.Linear(cfg.d_model, width), nn.ReLU() if self.sasrec_layout else nn.GELU(),
                                 Dropout(cfg.dropout), nn.Linear(width, cfg.d_model))
        self.drop = Dropout(cfg.dropout)
        self.attn_dropout = cfg.attn_dropout
        self.rotary = RotaryEmbedding(cfg.d_model // cfg.n_heads, cfg.max_len) if cfg.positional == "rotary" else None
        self.attention: torch.Tensor | None = None  # (B, L) when recording: the last query's weights
        self.record_attention = False

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x (B, L, D), mask (B, 1, L, L) -> (B, L, D); with ``last_only`` only the last position's
        output (B, 1, D), which still attends to every position (the final block at inference)."""
        B, L, D = x.shape
        normed = self.ln1(x)
        if self.sasrec_layout:  # queries from the normalised stream, keys and values from the raw one
            w_q, w_kv = self.qkv.weight.split([D, 2 * D])
            b_q, b_kv = self.qkv.bias.split([D, 2 * D])
            qkv = torch.cat([F.linear(normed, w_q, b_q), F.linear(x, w_kv, b_kv)], dim=-1)  # (B, L, 3D)
            x = normed
        else:
            qkv = self.qkv(normed)  # (B, L, 3D)
        q, k, v = qkv.view(B, L, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.rotary is not None:  # q, k: (B, H, L, hd)
            q, k = self.rotary(q), self.rotary(k)
        if last_only:
            q, mask, x = q[:, :, -1:], mask[:, :, -1:], x[:, -1:]  # (B, H, 1, hd), (B, 1, 1, L), (B, 1, D)
        # The CPU attention kernel is slower in bf16 than in fp32 (measured: 44 vs 32 ms per
        # forward + backward at B=64, L=200), so attention stays in fp32 under autocast.
        with torch.autocast("cpu", enabled=False):
            att = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask,
                                                 dropout_p=self.attn_dropout if self.training else 0.0)  # (B, H, Lq, hd)
        if self.record_attention:  # the weights the kernel used, for explanations (mean over heads)
            scores = (q[:, :, -1:].float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, 1, L)
            scores = scores.masked_fill(~mask[:, :, -1:], -torch.inf)
            self.attention = torch.softmax(scores, dim=-1).mean(1)[:, 0]  # (B, L)
        x = x + self.drop(self.proj(att.transpose(1, 2).reshape(B, q.shape[2], D)))
        if self.sasrec_layout:
            x = self.ln2(x)
            return x + self.drop(self.ffn(x))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRecNet(nn.Module):
    def __init__(self, cfg: SASRecConfig, n_items: int) -> None:
        super().__init__()
        unresolved = [f for f in ("max_len", "d_model", "dropout", "n_heads", "block") if getattr(cfg, f) == "auto"]
        if unresolved:
            raise ValueError(f"{unresolved} still 'auto': resolve the config first (SequentialRecommender.resolve_auto)")
        if cfg.d_model % cfg.n_heads:
            raise ValueError(f"d_model {cfg.d_model} must be divisible by n_heads {cfg.n_heads}")
        self.cfg = cfg
        self.item_emb = nn.Embedding(n_items + 1, cfg.d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.positional == "learned" else None
        self.emb_drop = Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        # Small, as in BERT/GPT: inputs are scaled by sqrt(d_model), so a unit-size start made
        # positions as loud as items and the first logits large (a plateau of several epochs).
        nn.init.normal_(self.item_emb.weight, std=cfg.init_std)
        if self.pos_emb is not None:
            nn.init.normal_(self.pos_emb.weight, std=cfg.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, tokens: torch.Tensor, table: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """tokens (B, L) left-padded with 0 -> hidden states (B, L, D); position t sees tokens <= t.

        ``table`` is ``item_table()`` when the caller already computed it for this step; with
        ``last_only`` the result is the last position's state only, (B, 1, D) (inference).
        """
        B, L = tokens.shape
        table = self.item_table() if table is None else table  # (n_items + 1, D)
        x = F.embedding(tokens, table, padding_idx=0) * math.sqrt(self.cfg.d_model)  # (B, L, D)
        if self.pos_emb is not None and self.cfg.position_from == "start":
            # Count from the first real event of the window: rows are left-padded, so each row
            # starts at a different column. Padding gets position 0 and is masked below anyway.
            pos = ((tokens != 0).cumsum(dim=1) - 1).clamp(min=0)  # (B, L)
            x = x + self.pos_emb(pos)
        elif self.pos_emb is not None:
            x = x + self.pos_emb.weight[-L:]  # right-aligned: the last event is always position max_len - 1
        x = self.emb_drop(x)
        causal = torch.ones(L, L, dtype=torch.bool, device=tokens.device).tril()  # (L, L)
        # Padding keys are hidden; every query still sees itself, so no row is empty (no NaN).
        mask = (causal & (tokens != 0)[:, None, :]) | torch.eye(L, dtype=torch.bool, device=tokens.device)
        mask = mask[:, None]  # (B, 1, L, L), broadcast over heads
        for j, block in enumerate(self.blocks):
            x = block(x, mask, last_only=last_only and j == len(self.blocks) - 1)
        return self.ln_f(x)

    def item_table(self) -> torch.Tensor:
        """(n_items + 1, D) representation of every token (row 0: padding); subclasses fuse other views here."""
        return self.item_emb.weight

    def item_weights(self, table: torch.Tensor | None = None) -> torch.Tensor:
        """(n_items, D) output item vectors: tied to the input side, so the same table serves both."""
        return (self.item_table() if table is None else table)[1:]


class SASRec(SequentialRecommender, AttendsToHistory, PrivatelyTrainable):
    """Causal self-attention over the user's event sequence, next-item softmax (SASRec family)."""

    name = "sasrec"
    Config = SASRecConfig

    def history_attention(self, histories: Sequences) -> list[np.ndarray]:
        self._check_fitted()
        L = self.config.max_len
        tokens = torch.from_numpy(histories.to_padded(L, pad=-1) + 1)  # (B, L) left-padded
        last = self.net.blocks[-1]
        last.record_attention = True
        try:
            self.net.eval()
            with torch.inference_mode():
                weights = []
                for start in range(0, len(tokens), 256):
                    self.net(tokens[start : start + 256], self._inference_table(), last_only=True)
                    weights.append(last.attention)
                w = torch.cat(weights).numpy()  # (B, L)
        finally:
            last.record_attention, last.attention = False, None
        out = []
        for r, n in enumerate(histories.lengths()):
            row = np.zeros(n, dtype=np.float32)
            kept = min(n, L)
            row[n - kept :] = w[r, L - kept :]
            out.append(row)
        return out

    def auto_values(self, p: DataProfile) -> dict[str, Any]:
        return super().auto_values(p) | {"n_heads": 1 if p.regime == "dense" else 2, "block": "pre_ln"}

    def build_net(self, n_items: int) -> SASRecNet:
        return SASRecNet(self.config, n_items)
