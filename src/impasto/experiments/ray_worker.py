"""The cluster side of ``RayExecutor``: a long-lived worker actor, the progress relay, and what travels between them.

Nothing here writes a file. A worker gets a batch without its images (``Task``; the images come from the object
store, put there once per sweep and cached by the worker), runs it through ``impasto.api.stylize_batch`` and returns
``Part``s: per variant the picture as PNG bytes (lossless, so the driver saves the same pixels), its losses,
history, status and timings, and, only when the batch was stopped, the batch's ``RunState`` on the CPU, which the
driver cuts into per-variant checkpoints. The network (``load_vgg``) is cached per process, so each worker loads
VGG once for as long as it lives.

Progress goes to a ``Relay`` actor in batches (about four a second, and all that is left before a batch returns),
without waiting for each push; the driver drains it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from .. import __version__
from ..api import Result, RunState, Step, StopToken, resolve_device, stylize_batch
from ..config import StyleConfig
from ..errors import ConfigError
from .executors import Batch, _fitting, peak_memory

FLUSH_EVERY = 0.25  # seconds between progress pushes from a worker
CACHED_INPUTS = 4  # input sets a worker keeps deserialised (a sweep has one; a batch job one per content image)


@dataclass
class Task:
    """A batch as it travels to a worker: the images stay behind (they are in the object store)."""

    key: tuple[int, int]  # (the executor's run number, the job's number): progress is filed under it
    index: int
    names: tuple[str, ...]
    configs: tuple[StyleConfig, ...]
    state: RunState | None = field(default=None, repr=False)
    version: str = __version__  # the driver's impasto: a worker with another version would paint other pictures


@dataclass
class WireResult:
    """A ``Result`` without its tensors: the picture as PNG bytes."""

    png: bytes
    config: StyleConfig
    history: list[dict[str, float]]
    status: str
    message: str
    elapsed: float
    recipe: dict[str, Any]


@dataclass
class Part:
    """What a worker ran of a batch: all of it, or (when it had to be split to fit memory) one part."""

    indices: list[int]  # the variants' places in the batch
    results: list[WireResult]
    state: RunState | None  # on the CPU; only when the part was stopped (the driver writes checkpoints from it)
    peak_memory: int | None
    memory_kind: str
    host: str


def to_wire(result: Result) -> WireResult:
    buf = io.BytesIO()
    result.image.save(buf, "PNG", compress_level=1)  # lossless; fast rather than small
    # A finished run needs no state on the driver, only the time over every session (what the runner records).
    elapsed = result.state.elapsed if result.state is not None else result.elapsed
    return WireResult(buf.getvalue(), result.config, list(result.history), result.status, result.message, elapsed,
                      result.recipe)


def from_wire(w: WireResult, state: RunState | None) -> Result:
    with Image.open(io.BytesIO(w.png)) as im:
        image = im.convert("RGB")
    elapsed = state.elapsed if state is not None else w.elapsed
    return Result(image=image, config=w.config, history=w.history, status=w.status, message=w.message,
                  elapsed=elapsed, recipe=w.recipe, state=state)


def move_state(state: RunState, device: torch.device | str) -> RunState:
    """The same state with every tensor on ``device`` (the CPU to travel, the worker's device to run)."""

    def move(v: Any) -> Any:
        return v.to(device) if isinstance(v, torch.Tensor) else v

    opt = state.opt_state
    if opt is not None:
        opt = {"state": {k: {n: move(v) if n != "step" else v for n, v in s.items()} for k, s in opt["state"].items()},
               "param_groups": [dict(g) for g in opt["param_groups"]]}
    return dataclasses.replace(
        state, images=[move(t) for t in state.images],
        params=[move(t) for t in state.params] if state.params is not None else None,
        ema=[move(t) for t in state.ema] if state.ema is not None else None, opt_state=opt)


class Relay:
    """Steps on their way from the workers to the driver (a Ray actor: workers push, the driver drains)."""

    def __init__(self) -> None:
        self.items: list[tuple[tuple[int, int], Step]] = []

    def push(self, items: list[tuple[tuple[int, int], Step]]) -> None:
        self.items.extend(items)

    def drain(self) -> list[tuple[tuple[int, int], Step]]:
        items, self.items = self.items, []
        return items


class Worker:
    """One per GPU (or per few CPU cores), for as long as the executor lives. Threaded (``max_concurrency=2``) so
    that ``halt`` reaches a batch while ``run`` works on it."""

    def __init__(self, relay: Any, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)  # what Ray granted it, not every core of the node
        self.relay = relay
        self.lock = threading.Lock()
        self.run_number, self.token = 0, StopToken()
        self.inputs: OrderedDict[str, tuple[Any, tuple[Any, ...]]] = OrderedDict()

    def info(self) -> dict[str, Any]:
        return {"impasto": __version__, "torch": torch.__version__, "host": socket.gethostname(),
                "pid": os.getpid(), "cuda": torch.cuda.is_available()}

    def halt(self, run_number: int, reason: str) -> None:
        """Stop the executor's run ``run_number``: the current batch ends after its step; later ones stop at once."""
        self._token(run_number).stop(reason)

    def run(self, task: Task, refs: list[Any]) -> list[Part]:
        if task.version != __version__:
            raise ConfigError(f"a worker on {socket.gethostname()} has impasto {__version__}, the driver "
                              f"{task.version}: install the same version on every node")
        token = self._token(task.key[0])
        content, styles = self._inputs(refs[0])
        device = resolve_device(task.configs[0].device)
        state = move_state(task.state, device) if task.state is not None else None
        batch = Batch(task.index, task.names, task.configs, content, styles, state)
        parts: list[Part] = []
        for part in _fitting(batch):
            if token.stopped:
                break  # the parts not started stay queued, as with the local executor
            indices = [batch.names.index(n) for n in part.names]
            parts.append(self._run_part(task, part, indices, token, device))
        return parts

    def _run_part(self, task: Task, part: Batch, indices: list[int], token: StopToken,
                  device: torch.device) -> Part:
        buffer: list[tuple[tuple[int, int], Step]] = []
        last = [0.0]  # the first step goes at once: the driver's bar moves as soon as a batch starts

        def on_step(step: Step) -> None:
            buffer.append((task.key, dataclasses.replace(step, index=indices[step.index], render=None)))
            if time.monotonic() - last[0] >= FLUSH_EVERY:
                self.relay.push.remote(buffer[:])  # not waited for: the calls reach the relay in order
                buffer.clear()
                last[0] = time.monotonic()

        try:
            with peak_memory(device) as mem:
                results = stylize_batch(part.content, list(part.styles), list(part.configs), callback=on_step,
                                        stop=token, state=part.state, progress=False)
        finally:
            import ray

            ray.get(self.relay.push.remote(buffer[:]))  # every step is at the relay before the batch returns
        stopped = any(r.status == "cancelled" for r in results)
        state = move_state(results[0].state, "cpu") if stopped and results[0].state is not None else None
        return Part(indices, [to_wire(r) for r in results], state, mem.bytes, mem.kind, socket.gethostname())

    def _inputs(self, ref: Any) -> tuple[Any, tuple[Any, ...]]:
        import ray

        key = ref.hex()
        if key not in self.inputs:
            content, styles = ray.get(ref)
            self.inputs[key] = (content, tuple(styles))
            while len(self.inputs) > CACHED_INPUTS:
                self.inputs.popitem(last=False)
        self.inputs.move_to_end(key)
        return self.inputs[key]

    def _token(self, run_number: int) -> StopToken:
        with self.lock:
            if run_number > self.run_number:  # a new run of the executor: a fresh token
                self.run_number, self.token = run_number, StopToken()
            return self.token if run_number == self.run_number else StopToken()
