"""How a saved model's arrays are stored: float32, or compressed by ``lmrec compress``.

``int8``: every matrix (item tables, the network's weight matrices, content vectors) as int8
rows with a float32 scale per row; ``bf16``: the same matrices as bfloat16 (the top 16 bits of
float32, rounded to nearest even). Vectors (biases, norms, counts) stay float32: rounding them
saves little and they set every score's offset. Loading restores float32 arrays, so every command that reads a model
reads a compressed one; the record of what was compressed is ``storage`` in ``config.json``.
"""

from __future__ import annotations

import numpy as np

from lmrec.edge.quantise import dequantise_rows, quantise_rows

METHODS = ("int8", "bf16")
SCALE = "::scale"


def _compressible(a: np.ndarray) -> bool:
    return a.dtype == np.float32 and a.ndim == 2


def to_bf16(a: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))  # round to nearest even
    return (rounded >> np.uint32(16)).astype(np.uint16)


def from_bf16(a: np.ndarray) -> np.ndarray:
    return (a.astype(np.uint32) << np.uint32(16)).view(np.float32)


def compress_state(state: dict[str, np.ndarray], method: str) -> tuple[dict[str, np.ndarray], dict]:
    """-> (arrays to save, the ``storage`` record that ``restore_state`` reads)."""
    if method not in METHODS:
        raise ValueError(f"storage method must be one of {METHODS}, got {method!r}")
    out, names = {}, []
    for name, a in state.items():
        if not _compressible(a):
            out[name] = a
            continue
        names.append(name)
        if method == "int8":
            out[name], out[name + SCALE] = quantise_rows(a)
        else:
            out[name] = to_bf16(a)
    return out, {"method": method, "arrays": names}


def restore_state(stored: dict[str, np.ndarray], record: dict) -> dict[str, np.ndarray]:
    state = {k: v for k, v in stored.items() if not k.endswith(SCALE)}
    for name in record["arrays"]:
        if record["method"] == "int8":
            state[name] = dequantise_rows(stored[name], stored[name + SCALE])
        else:
            state[name] = from_bf16(stored[name])
    return state
