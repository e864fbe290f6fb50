"""What ``impasto doctor`` reports: this machine as impasto sees it (the device and precision ``auto`` picks, and
why; the threads; the calibration's figures) and what the demo and a 512 px default run are expected to take here."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import __version__, calibrate
from .config import StyleConfig
from .forecast import forecast, line
from .runtime import explain_precision, resolve_device


@dataclass
class Report:
    versions: str
    device: str
    device_why: str
    cpu: str
    threads: str
    precision: str
    precision_why: str
    calibration: calibrate.Calibration | None
    measured_now: bool
    cache: str
    expected: list[tuple[str, str]] = field(default_factory=list)  # (what, the estimate line)


def _device_why(name: str, device: torch.device) -> str:
    if name != "auto":
        return "set explicitly"
    if device.type == "cuda":
        return "auto: a CUDA GPU is available"
    if device.type == "mps":
        return "auto: no CUDA GPU; Apple's MPS is available"
    return "auto: no CUDA GPU, no Apple MPS"


def _load() -> str:
    """The load average when other work keeps the cores busy (a run then takes longer than expected)."""
    try:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):  # not on every system
        return ""
    if load < 0.75 * cores:
        return ""
    return (f"; load average {load:.1f} on {cores} cores: other work is running, so runs take longer than expected "
            "here, and OMP_NUM_THREADS=1 may be quicker (python bench/fp32.py --threads 1 compares)")


def report(device_name: str = "auto", precision: str = "auto", *, again: bool = False,
           notice: Callable[[str], None] | None = None) -> Report:
    """This machine, calibrated now if it never was (or ``again``); ``notice`` hears a line before a measuring."""
    from .config import preset

    device = resolve_device(device_name)
    chosen, why = explain_precision(precision, device)
    if notice is not None and (again or calibrate.cached(device, chosen) is None):
        notice(f"impasto: measuring this machine ({device.type}, {chosen}): a few seconds …")
    cal, now = calibrate.calibration(device, chosen, again=again)
    flags = calibrate.cpu_flags().split()
    units = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    env = os.environ.get("OMP_NUM_THREADS")
    out = Report(
        versions=f"impasto {__version__} · torch {torch.__version__} · Python {platform.python_version()} · "
                 f"{platform.system()} {platform.machine()}",
        device=str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        device_why=_device_why(device_name, device),
        cpu=f"{calibrate.cpu_name()} · {os.cpu_count()} logical cores" + (f" · {', '.join(units)}" if units else ""),
        threads=f"{torch.get_num_threads()} threads for torch" + (f" (OMP_NUM_THREADS={env})" if env else
                                                                  " (OMP_NUM_THREADS unset: torch's default)")
        + _load(),
        precision=chosen, precision_why=why, calibration=cal, measured_now=now, cache=str(calibrate.cache_file()))
    cases = [("impasto demo", StyleConfig(size=384), (288, 384), (384, 384)),
             ("a 512 px default run", StyleConfig(), (384, 512), (512, 512)),
             ("the same with --preset preview", preset("preview"), (384, 512), (512, 512))]
    for what, cfg, final, style in cases:
        cfg = cfg.replace(device=device_name, precision=precision)
        fc = forecast([cfg], final, [style], device, chosen, measure=False)
        text = line(fc, cfg, final, [style]).removeprefix("impasto: ").split("; for a quicker")[0]
        out.expected.append((what, text))
    return out
