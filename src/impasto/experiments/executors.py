"""How a sweep's batches run: the ``Executor`` protocol, and ``LocalExecutor`` (in this process, one after another).

The runner plans the batches (variants that can share one pass through VGG) and owns everything on disk; an
executor only turns batches into results. It yields a ``BatchOutcome`` as each batch ends, in any order, and relays
every step to ``on_step``, so that a Ray executor can submit the batches to workers, yield them as they complete and
forward their progress to the driver, without the runner changing.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..api import Result, RunState, Step, StopToken, check_memory, resolve_device, stylize_batch
from ..api import run_states as states
from ..config import StyleConfig
from ..errors import ResourceError
from ..io.images import LoadedImage


@dataclass
class Batch:
    """Variants that run together: the same size and schedule (``core.optimize.batch_key``) and, when resumed, the
    same point of it. Each has its own config (weights, layers, blend, learning rate) and its own image."""

    index: int  # the batch's number in the sweep's plan (for progress)
    names: tuple[str, ...]
    configs: tuple[StyleConfig, ...]
    content: LoadedImage
    styles: tuple[LoadedImage, ...]
    state: RunState | None = field(default=None, repr=False)  # the batch's state when it continues

    def subset(self, indices: Sequence[int]) -> Batch:
        return Batch(self.index, tuple(self.names[i] for i in indices), tuple(self.configs[i] for i in indices),
                     self.content, self.styles, states.take(self.state, indices) if self.state else None)


@dataclass
class BatchOutcome:
    batch: Batch
    results: list[Result]  # one per variant, in the batch's order
    peak_memory: int | None = None  # bytes, for the whole batch
    memory_kind: str = ""  # "GPU allocated" or "process RSS"
    error: str = ""  # the batch could not be run (a remote worker lost every try): no results, its variants failed


class Executor(Protocol):
    """Runs batches. ``on_step(batch, step)`` is called for every step of every variant (``step.index`` is the
    variant's place in ``batch``); after ``stop`` is set, a running batch ends after its current step (its results
    say ``cancelled``) and no new batch starts."""

    def run(self, batches: Sequence[Batch], *, on_step: Callable[[Batch, Step], None],
            stop: StopToken) -> Iterator[BatchOutcome]: ...


class LocalExecutor:
    """Batches in this process, one after another, through ``impasto.api.stylize_batch``.

    A batch that would not fit the device's memory (``api.check_memory``) is halved until it does; on a CPU, a batch
    of large images runs in parts (``CPU_BATCH_PIXELS``), which is faster there.
    """

    def run(self, batches: Sequence[Batch], *, on_step: Callable[[Batch, Step], None],
            stop: StopToken) -> Iterator[BatchOutcome]:
        for batch in batches:
            for part in _fitting(batch):
                if stop.stopped:
                    return
                device = resolve_device(part.configs[0].device)
                with peak_memory(device) as mem:
                    results = stylize_batch(part.content, list(part.styles), list(part.configs),
                                            callback=functools.partial(on_step, part), stop=stop,
                                            state=part.state, progress=False)
                yield BatchOutcome(part, results, mem.bytes, mem.kind)


# On a CPU, one pass through VGG for several images pays only while the batch's activations stay small; past that,
# memory traffic outgrows the saved overhead and the batch is slower than its runs one after another.
# bench/batch.py (gatys-adam, bf16, 2 cores; bench/README.md, "Batched sweeps") measured batched / sequential 0.86 to
# 0.91 at up to ~240k pixels a batch (7 x 128 x 171, 7 x 160 x 213, 4 x 192 x 256), and 1.22 at 7 x 192 x 256 (344k),
# 1.03 at 2 x 400 x 533, 1.37 at 7 x 400 x 533 (the study's recipe). GPUs batch as memory allows.
CPU_BATCH_PIXELS = 250_000


def _fitting(batch: Batch) -> list[Batch]:
    """The parts a batch runs as: at most ``CPU_BATCH_PIXELS`` of final-size images a part on a CPU, and halved
    until each part fits the device's memory."""
    n = len(batch.names)
    if n == 1:
        return [batch]
    c0 = batch.configs[0]
    im = batch.content.image
    size = c0.result_size(im.height, im.width)
    device = resolve_device(c0.device)
    per = max(1, CPU_BATCH_PIXELS // (size[0] * size[1])) if device.type == "cpu" else n
    if per < n:
        return [part for i in range(0, n, per) for part in _fitting(batch.subset(range(i, min(i + per, n))))]
    try:
        check_memory(batch.configs, size, device)
        return [batch]
    except ResourceError:
        half = len(batch.names) // 2
        return [*_fitting(batch.subset(range(half))), *_fitting(batch.subset(range(half, len(batch.names))))]


@dataclass
class Peak:
    bytes: int | None = None
    kind: str = ""


@contextmanager
def peak_memory(device: torch.device) -> Iterator[Peak]:
    """Peak memory while the block runs: the GPU's allocated bytes, or on a CPU the process's resident set (RSS),
    sampled every 20 ms, since PyTorch's CPU allocator keeps no statistics."""
    if device.type == "cuda":
        peak = Peak(kind="GPU allocated")
        torch.cuda.reset_peak_memory_stats(device)
        yield peak
        peak.bytes = int(torch.cuda.max_memory_allocated(device))
        return
    peak = Peak(_rss(), "process RSS")
    if peak.bytes is None:  # no /proc: the process's lifetime peak is the best there is (resource is POSIX-only)
        yield peak
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak.bytes = kib if sys.platform == "darwin" else kib * 1024
        return
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.bytes = max(peak.bytes or 0, _rss() or 0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()
        peak.bytes = max(peak.bytes or 0, _rss() or 0)


def _rss() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
