"""The one precision policy: what ``precision = "auto"`` means on each device, and the autocast dtype it gives.

Measured (bench/per_iteration.py, bench/README.md): bf16 autocast for VGG with Gram matrices and losses in fp32 is
1.6-1.8x faster than fp32 per step on CPUs with native bf16 units (AVX512-BF16, AMX) at the same quality-meter
figures; on CPUs without them bf16 is emulated and slower, so ``auto`` is fp32 there and on MPS. On CUDA ``auto`` is
bf16 (fp16 on GPUs without bf16); that choice is by analogy until a GPU is measured. fp16 Grams overflow, hence the
losses always run in fp32 (core/losses.py).
"""

from __future__ import annotations

import functools

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read(1 << 20)
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``fp32``, ``bf16`` or ``fp16`` for this device; an explicit precision is returned as it is."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype VGG runs under autocast (None: plain fp32), after resolving ``auto`` for ``device``."""
    return _DTYPES[resolve_precision(precision, device)]
