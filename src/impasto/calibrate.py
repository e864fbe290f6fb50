"""How fast this machine is: measured once (a few seconds of matrix products and a few small VGG steps), cached in
the user's cache folder, measured again when torch, the CPU, the thread count, the device or the precision change.

The cache file is read as if a stranger wrote it: anything that is not a well-formed entry with finite, positive
figures (a truncated write, an edit, another version's layout) counts as missing and is measured again.

Where it lives: ``$IMPASTO_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/impasto``, else ``~/.cache/impasto``
(``calibration.json``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .core.precision import autocast_dtype
from .estimate import Rates, deepest, gram_flops, vgg_flops

FORMAT = 1  # the layout of the cache file and of what is measured; a change measures again
PROBE_SIZES = (80, 160)  # the engine's steps timed (square, px): two sizes part the fixed cost from the FLOPs
PROBE_STEPS = (6, 5)  # steps at each (the first two are warm-up)
FIGURES = ("overhead_s", "vgg_flops_per_s", "matmul_flops_per_s", "startup_s")


@dataclass(frozen=True)
class Calibration:
    """This machine's figures for one device and precision (see ``estimate.Rates``) and when they were measured."""

    overhead_s: float
    vgg_flops_per_s: float
    matmul_flops_per_s: float
    startup_s: float
    measured_at: str  # ISO 8601, UTC
    took_s: float  # how long the measuring took

    @property
    def rates(self) -> Rates:
        return Rates(self.overhead_s, self.vgg_flops_per_s, self.matmul_flops_per_s, self.startup_s)


def cache_dir() -> Path:
    if os.environ.get("IMPASTO_CACHE_DIR"):
        return Path(os.environ["IMPASTO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "impasto"


def cache_file() -> Path:
    return cache_dir() / "calibration.json"


def _cpuinfo(key: str) -> str | None:
    """The value of the first ``key`` line of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> str:
    """The CPU's feature flags (Linux), which decide the kernels torch picks (AVX2, AVX512, AMX)."""
    return _cpuinfo("flags") or ""


def machine(device: torch.device, precision: str) -> dict[str, str]:
    """What the figures depend on: a change in any of these measures again."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"format": str(FORMAT), "torch": torch.__version__, "device": f"{device.type}: {name}",
            "cpu_flags": hashlib.sha256(cpu_flags().encode()).hexdigest()[:16],
            "threads": str(torch.get_num_threads()), "precision": precision}


def _key(info: dict[str, str]) -> str:
    return json.dumps(info, sort_keys=True)


def _read() -> dict[str, Any]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _valid(entry: Any) -> Calibration | None:
    """A cache entry as a Calibration, or None when anything about it is off."""
    if not isinstance(entry, dict):
        return None
    try:
        values = {k: float(entry[k]) for k in (*FIGURES, "took_s")}
        when = entry["measured_at"]
    except (KeyError, TypeError, ValueError):
        return None
    if not isinstance(when, str) or len(when) > 40 or not all(math.isfinite(v) and 0 <= v < 1e18
                                                              for v in values.values()):
        return None
    if values["vgg_flops_per_s"] < 1e6 or values["matmul_flops_per_s"] < 1e6 or values["overhead_s"] > 60:
        return None
    return Calibration(**values, measured_at=when)


def cached(device: torch.device, precision: str) -> Calibration | None:
    """This machine's cached figures, or None when there are none (or none that can be trusted)."""
    return _valid(_read().get(_key(machine(device, precision))))


def calibration(device: torch.device, precision: str, *, measure_now: bool = True,
                again: bool = False) -> tuple[Calibration | None, bool]:
    """(the figures, whether they were measured just now). Cached ones are used unless ``again``; without a cache
    entry they are measured (a few seconds) when ``measure_now``, else None. A cache that cannot be written (a
    read-only home) costs only the next measuring."""
    key = _key(machine(device, precision))
    if not again:
        found = _valid(_read().get(key))
        if found is not None or not measure_now:
            return found, False
    cal = measure(device, precision)
    entries = {k: v for k, v in _read().items() if _valid(v) is not None}
    entries[key] = asdict(cal)
    try:
        from .io.files import atomic_write

        cache_dir().mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file(), json.dumps({"impasto": __version__, "entries": entries}, indent=1).encode(),
                     what="the calibration")
    except (OSError, Exception):
        pass
    return cal, True


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _matmul_rate(device: torch.device, precision: str, budget: float = 0.5) -> float:
    n = 1024 if device.type != "cpu" else 512
    dtype = autocast_dtype(precision, device) or torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # warm-up: the first product picks the kernels
    _sync(device)
    times = []
    t_end = time.perf_counter() + budget
    while len(times) < 3 or time.perf_counter() < t_end and len(times) < 200:
        t = time.perf_counter()
        a @ b
        _sync(device)
        times.append(time.perf_counter() - t)
    return 2.0 * n**3 / max(statistics.median(times), 1e-9)


def _engine_steps(device: torch.device, precision: str) -> list[tuple[float, float]]:
    """(FLOPs, median seconds) of the engine's own step (core.optimize: VGG forward and backward, the default
    losses, Adam) at each probe size, with random weights (the FLOPs are the network's, not the weights'). The
    whole step, not VGG alone: its losses and bookkeeping cost 1.4-1.8x a bare VGG pass at these sizes."""
    from .config import StyleConfig
    from .core.optimize import optimize
    from .core.preprocess import CaffePreprocess
    from .core.vgg import VGG19

    model = VGG19(CaffePreprocess(), channels_last=device.type == "cpu").to(device)  # as weights.load_vgg makes it
    points = []
    for size, steps in zip(PROBE_SIZES, PROBE_STEPS):
        cfg = StyleConfig(size=size, start_size=None, steps=steps, precision=precision, device=str(device))
        content, style = torch.rand(1, 3, size, size, device=device), torch.rand(1, 3, size, size, device=device)
        clock: list[float] = []
        optimize(model, content, [style], [cfg], callback=lambda s: clock.append(s.elapsed), precision=precision)
        durations = [b - a for a, b in zip(clock[1:], clock[2:])]  # from the third step: the first ones warm up
        layers = [n for n, _ in cfg.style_layers]
        points.append((2 * vgg_flops(size, size, deepest([*layers, *cfg.content_layers]))
                       + gram_flops(size, size, layers), statistics.median(durations)))
    return points


def measure(device: torch.device, precision: str) -> Calibration:
    """Measure the figures now (a few seconds)."""
    t0 = time.perf_counter()
    with torch.no_grad():
        matmul = _matmul_rate(device, precision)
    (f1, t1), (f2, t2) = _engine_steps(device, precision)
    per_flop = (t2 - t1) / (f2 - f1)
    if per_flop <= 0:  # noise swamped the difference: all of it FLOPs
        per_flop, overhead = t2 / f2, 0.0
    else:
        overhead = max(0.0, t1 - per_flop * f1)
    t = time.perf_counter()
    try:
        from .weights import load_state_dict

        load_state_dict("bundled")
        startup = time.perf_counter() - t
    except Exception:
        startup = 0.0
    return Calibration(overhead_s=overhead, vgg_flops_per_s=1 / per_flop, matmul_flops_per_s=matmul,
                       startup_s=startup, measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       took_s=time.perf_counter() - t0)

