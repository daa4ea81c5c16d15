"""Where the optimizer steps run: the CPU or a CUDA GPU (``runtime.device``, ``lmrec train --device``).

Only training steps move to the GPU. Validation, the test evaluation, saving and serving run
the CPU path, with the network moved back for them: the service's forward pass for one user
takes about a millisecond on a CPU, less than a GPU round trip, and every model's scoring code
stays one tested path. On CUDA, float32 matmuls use TF32 and autocast uses bfloat16 where the
GPU has it (``training.bf16`` "auto").

What trains on a GPU is declared, not discovered: models with the ``Accelerated`` capability
(``lmrec.models.base``) and training hooks whose ``accelerated`` is True. Anything else in the
fit (data augmentation, DP-SGD, multi-task heads) keeps the whole fit on the CPU: with
``auto`` quietly, with ``cuda`` as a clear error.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from lmrec.errors import ConfigError


def cuda_available() -> bool:
    return torch.cuda.is_available()


def choose(requested: str, cpu_only: list[str]) -> str:
    """"cpu" or "cuda" for a fit whose parts ``cpu_only`` (e.g. "augmentation") train on the CPU only."""
    if requested == "cpu":
        return "cpu"
    if requested == "cuda":
        if not cuda_available():
            raise ConfigError("runtime.device is 'cuda' (--device cuda), but torch sees no CUDA GPU "
                              f"(torch {torch.__version__}, torch.cuda.is_available() is False): use --device cpu "
                              "or auto, or install a CUDA build of torch on a machine with a GPU")
        if cpu_only:
            raise ConfigError(f"runtime.device is 'cuda' (--device cuda), but {', '.join(cpu_only)} train(s) on the "
                              "CPU only: use --device cpu or auto")
        return "cuda"
    if requested != "auto":
        raise ConfigError(f"runtime.device must be 'auto', 'cpu' or 'cuda', not {requested!r}")
    return "cuda" if cuda_available() and not cpu_only else "cpu"


def torch_device(name: str) -> torch.device:
    """The device of this process: under torchrun each process takes the GPU of its LOCAL_RANK."""
    if name == "cuda":
        index = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(index)
        # TF32 keeps float32's range with a 10-bit mantissa: the recommended setting for training
        # on Ampere and later (what bf16 autocast does not already cover: the optimizer, fp32 ops).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return torch.device("cuda", index)
    return torch.device("cpu")


def describe(name: str, requested: str, cpu_only: list[str]) -> str:
    """One line on where the steps run and why."""
    if name == "cuda":
        return f"cuda ({torch.cuda.get_device_name()}; TF32 matmuls; validation, evaluation and serving on the CPU)"
    if requested == "auto" and cuda_available():
        return f"cpu (a CUDA GPU is present, but {', '.join(cpu_only)} train(s) on the CPU only)"
    return "cpu"


def bf16_supported(name: str) -> bool:
    """Whether bfloat16 autocast pays on this device: native bf16 on the CPU (AVX512-BF16, AMX),
    or a GPU that has it."""
    if name == "cuda":
        return cuda_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, attr, lambda: False)() for attr in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (a tensor or a tuple of tensors) on ``device``; the CPU's batches untouched."""
    if device.type == "cpu":
        return batch
    if isinstance(batch, tuple):
        return tuple(t.to(device, non_blocking=True) for t in batch)
    return batch.to(device, non_blocking=True)
