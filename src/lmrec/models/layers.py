"""Small building blocks shared by the neural models."""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    """Inverted dropout with a cheaper mask than ``nn.Dropout`` on a CPU.

    ``nn.Dropout`` draws one Bernoulli sample per element, which profiling showed to be a fifth
    of a SASRec training step on ML-1M. Here one 64-bit random draw gives four 16-bit uniforms,
    compared against a threshold: the same distribution up to a 1/65536 rounding of ``p``, about
    ten times faster, and still driven by torch's seeded generator.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(-32768 + p * 65536)  # int16 uniforms below this are dropped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= self.threshold
        return x.masked_fill(~keep, 0) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
