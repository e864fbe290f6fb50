"""``RayExecutor``: a sweep's (or a batch job's) batches on a Ray cluster (``pip install 'impasto[ray]'``).

The runner still plans the batches and writes every file; this executor only moves batches to workers and results
back, so the workers need no shared file system. ``impasto.sweep(..., executor=RayExecutor())`` gives the same
pictures as the local executor: the same plan (seeds, batching) runs the same code, and pictures come back as PNG.

- Workers are long-lived actors (``ray_worker.Worker``): one per GPU (``gpus_per_worker=1``, or a fraction to
  pack small jobs), or on a CPU-only cluster one per ``cpus_per_worker`` cores. Each loads VGG once. They live as
  long as the executor (``close()``, or ``with RayExecutor() as ex:``), so a second sweep starts warm.
- Each worker holds one batch at a time; the driver hands the next one to whichever worker is free, so slow and fast
  workers balance, and results are taken in completion order (``ray.wait``).
- The input images are put in the object store once per sweep (per content image for a batch job), and dropped
  once no batch still to run needs them.
- Progress: workers push Steps to a relay actor; the driver drains it about ten times a second and hands the steps
  to the runner (bars, callbacks, report redraws), each step once even when a batch is retried.
- Stop (Ctrl-C, a StopToken): the running batches end after their current step and come back ``cancelled`` with
  their state (the runner writes checkpoints); no new batch starts. An exception on the driver (a second Ctrl-C)
  halts every worker too.
- A worker that dies (killed, out of memory, its node lost) loses only its batch: it is retried once on another
  worker (a replacement is started), then its variants are marked ``failed`` with the reason. A batch that ran out
  of GPU memory (``ResourceError``) is retried once elsewhere too. Other errors end the sweep, as they do locally.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import Step, StopToken
from ..errors import ConfigError, ImpastoError, ResourceError
from .executors import Batch, BatchOutcome
from .plots import MissingExtra
from .ray_worker import Relay, Task, Worker, from_wire

POLL = 0.1  # seconds the driver waits for a result before it drains progress again


def require_ray() -> Any:
    """The ``ray`` module, or one clear line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingExtra("the Ray executor needs ray, which is not installed: pip install 'impasto[ray]'") from None
    return ray


@dataclass
class _Job:
    number: int
    batch: Batch
    lost: list[str] = field(default_factory=list)  # why earlier tries did not come back
    tried_on: set[str] = field(default_factory=set)  # the workers (names) that tried it

    @property
    def inputs_key(self) -> tuple[int, ...]:
        return (id(self.batch.content), *map(id, self.batch.styles))


class RayExecutor:
    """Runs batches on Ray workers. ``address``: None starts a local Ray instance (unless this process is already
    connected to one), ``"auto"`` joins the cluster this machine belongs to, ``"ray://host:10001"`` a remote one.
    ``workers`` caps how many actors start (default: as many as the cluster's GPUs, or CPUs, allow).
    ``retries``: how often a lost batch runs again elsewhere before its variants are marked failed.
    ``init`` is passed on to ``ray.init`` (``runtime_env``, ``num_cpus``, ...)."""

    def __init__(self, address: str | None = None, *, workers: int | None = None, gpus_per_worker: float = 1.0,
                 cpus_per_worker: int = 4, retries: int = 1, init: dict[str, Any] | None = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"workers = {workers} is invalid: give 1 or more (or none: as the cluster allows)")
        if not 0 < gpus_per_worker <= 8 or cpus_per_worker < 1:
            raise ConfigError("gpus_per_worker must be in (0, 8] (0.5: two workers share a GPU) and "
                              "cpus_per_worker 1 or more")
        self.address, self.max_workers, self.retries = address, workers, retries
        self.gpus_per_worker, self.cpus_per_worker = gpus_per_worker, cpus_per_worker
        self.init_args = dict(init or {})
        self.ray: Any = None
        self.started_ray = False
        self.relay: Any = None
        self.workers: dict[str, Any] = {}  # name → actor handle, for the workers alive
        self.started = 0  # workers started so far (names them)
        self.run_number = 0
        self.busy: dict[int, Any] = {}  # batch index → the worker running it (for tests and tools)

    # -- the cluster ----------------------------------------------------------------------------------------------
    def connect(self) -> Any:
        if self.ray is not None:
            return self.ray
        ray = require_ray()
        if not ray.is_initialized():
            args: dict[str, Any] = {"address": self.address, "logging_level": "WARNING", **self.init_args}
            if self.address is None:
                args.setdefault("include_dashboard", False)
            try:
                ray.init(**args)
            except ConnectionError as e:
                raise ConfigError(f"cannot reach the Ray cluster at {self.address!r} ({e}); start one with "
                                  "'ray start --head' or give --address auto|ray://HOST:10001") from None
            self.started_ray = True
        self.ray = ray
        self.relay = ray.remote(Relay).options(num_cpus=0).remote()
        return ray

    def capacity(self) -> int:
        """How many workers this executor runs at most (it connects to the cluster to find out)."""
        return self._plan_workers()[0]

    def _plan_workers(self) -> tuple[int, dict[str, Any], int | None]:
        ray = self.connect()
        res = ray.cluster_resources()
        gpus, cpus = float(res.get("GPU", 0)), float(res.get("CPU", 1))
        if gpus >= self.gpus_per_worker:
            n, options, threads = int(gpus // self.gpus_per_worker), {"num_gpus": self.gpus_per_worker,
                                                                         "num_cpus": 1}, None
        else:
            per = max(1, min(self.cpus_per_worker, int(cpus)))
            n, options, threads = max(1, int(cpus // per)), {"num_cpus": per, "num_gpus": 0}, per
        return (min(n, self.max_workers) if self.max_workers else n), options, threads

    def _start(self, count: int) -> None:
        """Start workers until there are ``count`` (at most as many as the cluster holds)."""
        most, options, threads = self._plan_workers()
        actor = self.ray.remote(Worker).options(max_concurrency=2, max_restarts=0, **options)
        while len(self.workers) < min(count, most):
            self.started += 1
            self.workers[f"worker-{self.started}"] = actor.remote(self.relay, threads)

    def close(self) -> None:
        """Stop the workers (and the local Ray instance, if this executor started it)."""
        if self.ray is None:
            return
        for handle in [*self.workers.values(), self.relay]:
            self.ray.kill(handle)
        self.workers.clear()
        if self.started_ray:
            self.ray.shutdown()
        self.ray, self.relay, self.started_ray = None, None, False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running --------------------------------------------------------------------------------------------------
    def run(self, batches: Sequence[Batch], *, on_step: Callable[[Batch, Step], None],
            stop: StopToken) -> Iterator[BatchOutcome]:
        if not batches:
            return
        ray = self.connect()
        self.run_number += 1
        self._start(len(batches))
        run = _Dispatch(self, [_Job(i, b) for i, b in enumerate(batches)], on_step)
        halted = False
        try:
            while run.queue or run.running:
                if stop.stopped and not halted:
                    halted = True
                    run.queue.clear()  # no new batch starts; the queued ones stay queued
                    run.halt(stop.reason or "stopped")
                run.dispatch()
                if not run.running:
                    break
                ready, _ = ray.wait(list(run.running), num_returns=1, timeout=POLL)
                if ready:
                    ready, _ = ray.wait(list(run.running), num_returns=len(run.running), timeout=0)
                run.forward_progress()
                for ref in ready:
                    yield from run.collect(ref)
        finally:
            if run.running:  # an error or an interrupt on the driver: the cluster stops too
                run.halt("the driver stopped")
                for ref in run.running:
                    try:
                        ray.cancel(ref)  # a queued task is dropped; a running one has been told to halt
                    except Exception:  # already finished, or its worker is gone
                        pass
            self.busy.clear()


class _Dispatch:
    """One ``run``: the queue, the batches in flight, progress and retries."""

    def __init__(self, ex: RayExecutor, jobs: list[_Job], on_step: Callable[[Batch, Step], None]) -> None:
        self.ex, self.ray, self.on_step = ex, ex.ray, on_step
        self.queue: deque[_Job] = deque(jobs)
        self.running: dict[Any, tuple[_Job, str]] = {}  # ObjectRef → (job, worker id)
        self.idle: list[str] = list(ex.workers)
        self.jobs = {j.number: j for j in jobs}
        self.sent: dict[tuple[int, int], int] = {}  # (job, variant) → the last step handed on
        self.open: set[int] = {j.number for j in jobs}  # jobs whose steps may still be handed on
        self.users: dict[tuple[int, ...], int] = {}
        for j in jobs:
            self.users[j.inputs_key] = self.users.get(j.inputs_key, 0) + 1
        self.refs: dict[tuple[int, ...], Any] = {}

    def dispatch(self) -> None:
        """Give each idle worker the first queued batch it has not tried (a retry goes elsewhere when it can)."""
        for wid in list(self.idle):
            if wid not in self.ex.workers:
                self.idle.remove(wid)
                continue
            job = next((j for j in self.queue if wid not in j.tried_on or not set(self.ex.workers) - j.tried_on),
                       None)  # a worker it tried only when every live worker has
            if job is None:
                continue
            self.queue.remove(job)
            self.idle.remove(wid)
            job.tried_on.add(wid)
            b = job.batch
            task = Task((self.ex.run_number, job.number), b.index, b.names, b.configs, b.state)
            ref = self.ex.workers[wid].run.remote(task, [self._inputs(job)])  # nested: the worker caches it
            self.running[ref] = (job, wid)
            self.ex.busy[b.index] = self.ex.workers[wid]

    def _inputs(self, job: _Job) -> Any:
        key = job.inputs_key
        if key not in self.refs:
            self.refs[key] = self.ray.put((job.batch.content, tuple(job.batch.styles)))
        return self.refs[key]

    def _done_with(self, job: _Job) -> None:
        self.open.discard(job.number)
        self.ex.busy.pop(job.batch.index, None)
        self.users[job.inputs_key] -= 1
        if not self.users[job.inputs_key]:
            self.refs.pop(job.inputs_key, None)  # the object store frees it once the workers let go

    def forward_progress(self) -> None:
        items = self.ray.get(self.ex.relay.drain.remote())
        for (run_number, number), step in items:
            if run_number != self.ex.run_number or number not in self.open:
                continue  # a late step of a batch already filed, or of an earlier run
            key = (number, step.index)
            if step.step <= self.sent.get(key, 0):
                continue  # a retry going over steps the driver has seen
            self.sent[key] = step.step
            self.on_step(self.jobs[number].batch, step)

    def halt(self, reason: str) -> None:
        for _, wid in self.running.values():
            handle = self.ex.workers.get(wid)
            if handle is not None:
                handle.halt.remote(self.ex.run_number, reason)

    def collect(self, ref: Any) -> Iterator[BatchOutcome]:
        job, wid = self.running.pop(ref)
        exc = self.ray.exceptions
        lost_errors = (exc.RayActorError, exc.WorkerCrashedError, exc.ObjectLostError, exc.NodeDiedError,
                       exc.OutOfMemoryError, exc.LocalRayletDiedError)
        try:
            parts = self.ray.get(ref)
        except lost_errors as e:
            self.ex.workers.pop(wid, None)
            self.ex._start(len(self.ex.workers) + 1)  # a replacement, where the cluster has room for one
            self.idle.extend(w for w in self.ex.workers if w not in self.idle and not self._is_busy(w))
            yield from self._retry(job, f"its worker was lost ({_reason(e)})")
            return
        except exc.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, ResourceError):
                self.idle.append(wid)
                yield from self._retry(job, str(cause))
                return
            if isinstance(cause, ImpastoError):
                raise cause from None  # bad input found late ends the sweep, as it does locally
            raise
        self.idle.append(wid)
        self.dispatch()  # the worker gets its next batch before the runner spends time filing this one
        self.forward_progress()  # the batch's last steps, before its outcome
        self._done_with(job)
        for part in parts:
            results = [from_wire(w, part.state) for w in part.results]
            yield BatchOutcome(job.batch.subset(part.indices), results, part.peak_memory, part.memory_kind)

    def _is_busy(self, wid: str) -> bool:
        return any(w == wid for _, w in self.running.values())

    def _retry(self, job: _Job, why: str) -> Iterator[BatchOutcome]:
        job.lost.append(why)
        if len(job.lost) <= self.ex.retries:
            self.queue.appendleft(job)
            self.dispatch()
            return
        self._done_with(job)
        tries = "twice" if len(job.lost) == 2 else f"{len(job.lost)} times"
        yield BatchOutcome(job.batch, [], error=f"tried {tries} on the cluster and lost each time: "
                                                f"{'; then '.join(dict.fromkeys(job.lost))}")


def _reason(e: BaseException) -> str:
    """A lost worker's exception as one short phrase (Ray's messages run to a page)."""
    text = str(e)
    for pattern in (r"Worker exit detail: ([^\n]+?)(?:\.\s|$)", r"(killed[^\n.]*)", r"(out of memory[^\n.]*)"):
        m = re.search(pattern, text, re.IGNORECASE)
        if m:
            return f"{type(e).__name__}: {m.group(1).strip()}"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(e).__name__}: {first[:160]}" if first else type(e).__name__

