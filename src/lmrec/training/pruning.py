"""Magnitude pruning of a network's weight matrices, and the hook that keeps pruned weights at
zero while the network is fine-tuned."""

from __future__ import annotations

import torch
from torch import nn

from lmrec.training.hooks import TrainingHook


def magnitude_masks(net: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Per ``nn.Linear`` weight (state-dict name -> bool mask, True = kept): the ``sparsity``
    share of its entries smallest in magnitude removed. Layer by layer, so every matrix reaches
    the requested sparsity (a global threshold would empty the layers with the smallest scale).
    Embedding tables are left whole: a pruned entry there is part of an item's identity."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    masks = {}
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            w = module.weight.detach().abs().flatten()
            drop = int(round(sparsity * w.numel()))
            keep = torch.ones_like(w, dtype=torch.bool)
            if drop:
                keep[torch.topk(w, drop, largest=False).indices] = False
            masks[f"{name}.weight" if name else "weight"] = keep.view_as(module.weight)
    return masks


def channel_masks(net: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Structured pruning of feed-forward layers: in every ``nn.Sequential`` where one ``nn.Linear``
    feeds another (the Transformer's FFN, the DNN's MLP), the ``sparsity`` share of hidden units
    with the smallest ||incoming weights|| * ||outgoing weights|| is removed whole (its row and
    bias in the first layer, its column in the second), so the layer behaves as a narrower one."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    masks = {}
    for name, module in net.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        linear = [(i, m) for i, m in enumerate(module) if isinstance(m, nn.Linear)]
        for (i, a), (j, b) in zip(linear, linear[1:], strict=False):
            if a.out_features != b.in_features:
                continue
            importance = a.weight.detach().norm(dim=1) * b.weight.detach().norm(dim=0)  # (hidden,)
            drop = int(round(sparsity * len(importance)))
            keep = torch.ones_like(importance, dtype=torch.bool)
            if drop:
                keep[torch.topk(importance, drop, largest=False).indices] = False
            prefix = f"{name}." if name else ""
            masks[f"{prefix}{i}.weight"] = keep[:, None].expand_as(a.weight).clone()
            if a.bias is not None:
                masks[f"{prefix}{i}.bias"] = keep.clone()
            # A later pair may prune b's own outputs: combine with what is already there.
            cols = keep[None, :].expand_as(b.weight)
            key = f"{prefix}{j}.weight"
            masks[key] = masks[key] & cols if key in masks else cols.clone()
    return masks


def head_masks(net: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Structured pruning of attention: in every module with ``qkv`` and ``proj`` linear layers and
    ``n_heads`` (a Transformer block), the ``sparsity`` share of heads (rounded down, at least one
    kept) with the smallest ||output projection columns|| is removed whole: its query, key and
    value rows and its output columns. A removed head contributes nothing to the block."""
    masks = {}
    for name, module in net.named_modules():
        qkv, proj, heads = getattr(module, "qkv", None), getattr(module, "proj", None), getattr(module, "n_heads", 0)
        if not (isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear)) or heads < 2:
            continue
        d = proj.in_features
        hd = d // heads
        importance = proj.weight.detach().view(proj.out_features, heads, hd).norm(dim=(0, 2))  # (H,)
        drop = min(heads - 1, int(sparsity * heads))
        if not drop:
            continue
        gone = torch.topk(importance, drop, largest=False).indices
        keep_rows = torch.ones(3, heads, hd, dtype=torch.bool)  # q, k, v rows of qkv
        keep_rows[:, gone] = False
        keep_cols = torch.ones(heads, hd, dtype=torch.bool)
        keep_cols[gone] = False
        prefix = f"{name}." if name else ""
        masks[f"{prefix}qkv.weight"] = keep_rows.reshape(-1)[:, None].expand_as(qkv.weight).clone()
        if qkv.bias is not None:
            masks[f"{prefix}qkv.bias"] = keep_rows.reshape(-1).clone()
        masks[f"{prefix}proj.weight"] = keep_cols.reshape(-1)[None, :].expand_as(proj.weight).clone()
    return masks


def structured_masks(net: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Feed-forward hidden units and attention heads, each at ``sparsity``."""
    return channel_masks(net, sparsity) | head_masks(net, sparsity)


def apply_masks(net: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(net.named_parameters())
    with torch.no_grad():
        for name, keep in masks.items():
            params[name].mul_(keep)


class PruningMasks(TrainingHook):
    """Fine-tuning a pruned network: pruned weights start at zero and their gradients are zeroed
    before every step, so AdamW (whose moments then stay zero, and whose decay scales zero to
    zero) never moves them."""

    name = "pruning"

    def __init__(self, masks: dict[str, torch.Tensor]) -> None:
        self.masks = masks

    def wrap(self, trainer) -> None:
        apply_masks(trainer.module, self.masks)

    def after_backward(self, trainer) -> None:
        params = dict(trainer.module.named_parameters())
        for name, keep in self.masks.items():
            grad = params[name].grad
            if grad is not None:
                grad.mul_(keep)


def sparsity_of(net: nn.Module, masks: dict[str, torch.Tensor]) -> float:
    """Share of zero entries over the masked weight matrices."""
    params = dict(net.named_parameters())
    names = [n for n in masks if params[n].ndim == 2]
    zeros = sum(int((params[n] == 0).sum()) for n in names)
    return zeros / max(1, sum(params[n].numel() for n in names))
