"""Shared by the bench scripts: where things are, the machine's calibration, and a clock that can be paused.

Every timing a bench script prints or writes comes with a ``torch.mm`` fp32 GFLOP/s figure measured in the same
process at the same thread count, so that runs on other machines (or on this shared one under other load) can be
compared through it: seconds × GFLOP/s is roughly constant for a compute-bound workload.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
IMAGES = Path(os.environ.get("IMPASTO_IMAGES", BENCH.parent.parent / "shared" / "images"))
PAIRS = {
    "golden_gate+starry_night": ("golden_gate.jpg", "starry_night.jpg"),
    "tubingen+the_scream": ("tubingen.jpg", "the_scream.jpg"),
}


def pair_paths(pair: str) -> tuple[Path, Path]:
    content, style = PAIRS[pair]
    return IMAGES / content, IMAGES / style


def mm_gflops(n: int = 1024, seconds: float = 0.3) -> dict[str, float]:
    """fp32 ``torch.mm`` rate at the current thread count, over repeats for ``seconds``.

    ``median``/``best``: GFLOP per wall second; ``cpu``: GFLOP per process-CPU second (median), which other
    people's jobs on a shared machine disturb much less (compare it with CPU-time rates at the same thread count).
    """
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up (thread pool, caches)
    rates, cpu_rates = [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        t, c = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        t, c = time.perf_counter() - t, time.process_time() - c
        rates.append(2 * n**3 / t / 1e9)
        cpu_rates.append(2 * n**3 / max(c, 1e-6) / 1e9)
    return {
        "median": statistics.median(rates),
        "best": max(rates),
        "cpu": statistics.median(cpu_rates),
        "n": n,
        "threads": torch.get_num_threads(),
    }


def provenance() -> dict[str, Any]:
    """The commit the code ran at, and whether src/ had uncommitted changes (the tree is shared while it runs)."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=BENCH.parent, capture_output=True, text=True, check=False
            ).stdout.strip()
        except OSError:
            return ""

    return {"commit": git("rev-parse", "--short", "HEAD"), "src_dirty": bool(git("status", "--porcelain", "src"))}


def source_hash(module_file: str) -> str:
    """A short hash of every .py file of the package that ``module_file`` belongs to: which code a child really
    imported (a checkout given by path can change under a long run)."""
    import hashlib

    root = Path(module_file).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loadavg": os.getloadavg(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        **provenance(),
    }


class Clock:
    """Wall and process-CPU time that exclude the measuring: ``pause()``/``resume()`` around the meter.

    On this shared 2-core machine other people's jobs take cores away, so wall time depends on them; with one
    thread per process, the process's CPU time is what the work itself cost, and is the fairer figure to compare.
    """

    def __init__(self) -> None:
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        self.excluded = self.cpu_excluded = 0.0
        self._paused: tuple[float, float] | None = None

    def pause(self) -> None:
        self._paused = (time.perf_counter(), time.process_time())

    def resume(self) -> None:
        assert self._paused is not None
        self.excluded += time.perf_counter() - self._paused[0]
        self.cpu_excluded += time.process_time() - self._paused[1]
        self._paused = None

    def now(self) -> float:
        """Wall seconds."""
        t = self._paused[0] if self._paused is not None else time.perf_counter()
        return t - self.start - self.excluded

    def cpu(self) -> float:
        """Process CPU seconds (all threads)."""
        t = self._paused[1] if self._paused is not None else time.process_time()
        return t - self.cpu_start - self.cpu_excluded


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return path


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)  # for subprocesses
