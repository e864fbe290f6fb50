"""Where a run runs: the device (``auto`` → cuda, mps, cpu), its precision (core/precision.py's one policy), and
how much memory it has free."""

from __future__ import annotations

import torch

from .core import precision as _precision
from .errors import ConfigError, ResourceError


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda, then mps, then cpu. An explicit device that is not there is an error, not a silent CPU run."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device = {name!r} is invalid: use auto, cpu, cuda, cuda:N or mps", key="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError("--device cuda: no CUDA GPU is available here; use --device cpu (or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ResourceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s); use cuda:0")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ResourceError("--device mps: Apple's MPS is not available here; use --device cpu (or auto)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device = {name!r} is invalid: use auto, cpu, cuda, cuda:N or mps", key="device")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → what is fastest without hurting the picture on this device (see core/precision.py)."""
    return _precision.resolve_precision(precision, device)


def explain_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(the precision a run gets, why): ``auto``'s choice on this device in words (core/precision.py decides)."""
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        return chosen, "set explicitly"
    if device.type == "cuda":
        why = "a CUDA GPU with bf16" if chosen == "bf16" else "a CUDA GPU without bf16: fp16"
        return chosen, f"auto: {why} (by analogy with the CPU figures; not yet measured on a GPU)"
    if device.type == "mps":
        return chosen, "auto: Apple's MPS runs fp32 (bf16 autocast is not measured faster there)"
    if chosen == "bf16":
        return chosen, "auto: this CPU has native bf16 units (AVX512-BF16 or AMX): 1.6-1.8x faster a step, same pictures"
    return chosen, ("auto: this CPU has no AVX512-BF16 or AMX units; bf16 would be emulated there, slower than fp32")


def available_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
