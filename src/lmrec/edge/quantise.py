"""Symmetric per-row int8 quantisation of embedding tables (pure numpy: the edge runtime
dequantises with the same arithmetic)."""

from __future__ import annotations

import numpy as np


def quantise_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, D) float -> (n, D) int8 and (n,) float32 scales with rows ~= q * scale[:, None].

    A row's scale is its largest magnitude / 127, so every row keeps its own range (item vectors
    differ in length by an order of magnitude between popular and rare items)."""
    rows = np.asarray(rows, dtype=np.float32)
    flat = rows.reshape(len(rows), -1)  # (n, D)
    scale = np.abs(flat).max(axis=1) / 127.0 if flat.size else np.zeros(len(rows), np.float32)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)  # all-zero rows (padding) stay zero
    q = np.clip(np.rint(flat / scale[:, None]), -127, 127).astype(np.int8)
    return q.reshape(rows.shape), scale


def dequantise_rows(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (q.reshape(len(q), -1).astype(np.float32) * scale[:, None]).reshape(q.shape)
