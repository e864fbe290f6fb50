"""The job queue behind ``impasto serve``: one worker thread per device runs jobs in order; everything is on disk.

No HTTP here (the app turns requests into ``submit``/``cancel`` calls), so the queue can be tested on its own.

A job's folder, ``RESULTS/<id>/``, holds what it needs to run and what it made::

    job.json            status, times, message, settings, input labels, loss history
    input-0.png         the content image (decoded and re-encoded: an upload is never stored as sent)
    input-1.png ...     the style images
    result.png          the final (or, when cancelled, the last) image with its recipe; result.losses.csv beside it

``delete`` removes an ended job's folder (``results``: renamed aside first, so that it never half-returns).

On start, finished jobs come back into the gallery, queued ones are queued again and a job that was running when
the server stopped is marked failed. Folder names are ids this module made; nothing from a request becomes a path.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from PIL import Image, PngImagePlugin

from .. import __version__
from ..api import FINAL, STATUSES, Status, Step, StopToken, stylize
from ..config import StyleConfig, from_dict
from ..errors import ImpastoError, OutputError, WriteError
from ..io.files import atomic_write, clean_stale_temps, os_reason, printable
from ..io.images import LoadedImage, load_image
from ..io.recipe import RECIPE_KEY, save_image
from . import results
from .jobfile import read_job_file
from .maskfiles import load_masks, store_masks

log = logging.getLogger("impasto.web")

JOB_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")  # secrets.token_urlsafe(16): 128 random bits
PREVIEW_MAX_SIDE = 1024


def new_id() -> str:
    return secrets.token_urlsafe(16)


def read_status(word: Any) -> Status:
    """A status as a job.json holds it. Every word older versions wrote (queued, running, done, failed, cancelled)
    is still in the vocabulary; a word outside it makes the file unreadable (the job is skipped, with a warning)."""
    if word not in STATUSES:
        raise ValueError(f"unknown status {word!r}")
    return cast(Status, word)


@dataclass
class Job:
    """One request to paint. Mutated only by the queue, under its lock; read through ``JobQueue.describe``."""

    id: str
    folder: Path
    config: StyleConfig
    inputs: dict[str, Any]  # {"content": label, "styles": [labels]}: display names only, never paths
    status: Status = "queued"  # see impasto.api.STATUSES: diverged and failed say why in ``message``
    message: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total_steps: int | None = None
    size: tuple[int, int] | None = None  # (height, width) of the current scale
    scale: int | None = None  # 0-based index of the current scale, of ``scales``
    scales: int | None = None
    eta_s: float | None = None  # seconds left, estimated per scale (Step.eta: impasto.progress.Eta)
    estimate_s: float | None = None  # before it starts: what it will take here (impasto.api.estimate_run)
    losses: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    preview: bytes | None = field(default=None, repr=False)  # the latest PNG while running
    preview_step: int = 0
    has_result: bool = False
    stop: StopToken = field(default_factory=StopToken, repr=False)

    @property
    def result_path(self) -> Path:
        return self.folder / "result.png"

    def input_path(self, index: int) -> Path:
        return self.folder / f"input-{int(index)}.png"

    @property
    def download_name(self) -> str:
        return results.download_name(self.inputs, self.id)

    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return round((self.finished or time.time()) - self.started, 3)

    def to_json(self) -> dict[str, Any]:
        """What ``job.json`` holds."""
        return {
            "id": self.id, "status": self.status, "message": self.message, "created": self.created,
            "started": self.started, "finished": self.finished, "step": self.step, "total_steps": self.total_steps,
            "losses": self.losses, "config": self.config.to_dict(), "inputs": self.inputs,
            "has_result": self.has_result, "history": self.history, "impasto": __version__,
        }


class JobQueue:
    """Jobs run one at a time on ``device``, in the order they came; ``cancel`` works queued or running.

    ``preview_every``: a preview PNG is made at step 1, every that many steps, and at the last step.
    ``run`` is the engine entry (``impasto.api.stylize``); tests may pass a stand-in.
    """

    def __init__(self, results_dir: str | Path, device: str, *, preview_every: int = 10,
                 run: Callable[..., Any] = stylize) -> None:
        self.root = Path(results_dir)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{self.root}: cannot create the results folder ({e.strerror or e}); "
                              "pass --results DIR") from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise OutputError(f"{self.root}: the results folder is not writable; pass --results DIR")
        self.device, self.preview_every, self._run_fn = device, max(1, int(preview_every)), run
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._queue: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._paused = self._closing = False
        self._thread: threading.Thread | None = None
        self.version = 0  # bumped on every change; event streams wait for it to move
        self.streams_ended = False  # set when the server is stopping: event streams close
        self._load()

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(target=self._work, name="impasto-worker", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker: the running job is cancelled after its current step; queued jobs stay queued on disk."""
        with self._lock:
            self._closing = True
            if self._running is not None:
                self._running.stop.stop("the server stopped")
            self._lock.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def end_streams(self) -> None:
        """Ask open event streams to close (the server is stopping; jobs go on until ``close``)."""
        self.streams_ended = True

    def pause(self) -> None:
        """Start no new job until ``resume`` (the running one goes on)."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._lock.notify_all()

    # -- requests -------------------------------------------------------------------------------------------------
    def submit(self, content: LoadedImage, styles: list[LoadedImage], config: StyleConfig,
               masks: dict[str, Any] | None = None, estimate_s: float | None = None) -> Job:
        """Store the (already decoded and checked) inputs under a new id and queue the job. ``masks``:
        {"masks": [one per style], "keep_mask": ...} as images (maskfiles), stored with the inputs."""
        job_id = new_id()
        folder = self.root / job_id
        try:
            folder.mkdir()
            for i, im in enumerate([content, *styles]):
                save_image(im.with_alpha(), folder / f"input-{i}.png")  # transparency kept
            labels = store_masks(folder, masks or {})
        except OSError as e:  # a full disk: nothing half-stored stays, and the client hears why (507)
            shutil.rmtree(folder, ignore_errors=True)
            log.error("cannot store a new job in %s: %s", folder, e)
            reason = e.reason if isinstance(e, WriteError) else os_reason(e)
            raise WriteError(f"the server cannot store the job: {reason}", reason=reason) from None
        job = Job(job_id, folder, config, {"content": content.name, "styles": [s.name for s in styles], **labels},
                  estimate_s=estimate_s)
        with self._lock:
            self._jobs[job.id] = job
            self._queue.append(job)
            self._changed(job)
            self._lock.notify_all()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id) if JOB_ID.match(job_id) else None

    def cancel(self, job: Job) -> bool:
        """Cancel a queued job at once, or a running one after its current step. False if it had already ended."""
        with self._lock:
            if job.status == "queued":
                self._queue.remove(job)
                job.status, job.message, job.finished = "cancelled", "cancelled while queued", time.time()
                self._changed(job)
                return True
            if job.status == "running":
                job.stop.stop("cancelled by request")
                return True
            return False

    def delete(self, job: Job) -> bool:
        """Remove an ended job and its folder (only ``RESULTS/<id>``: see ``results``). False while it is queued or
        running."""
        results.check_job_folder(self.root, job.folder, job.id)
        with self._lock:
            if job.status not in FINAL:
                return False
            trash = results.set_aside(self.root, job.id)
            self._jobs.pop(job.id, None)
            self._changed()
        results.remove(trash)
        return True

    def position(self, job: Job) -> int | None:
        """How many jobs are ahead of this one (the running job counts): 0 = running or next. None when ended."""
        with self._lock:
            return self._position(job)

    def _position(self, job: Job) -> int | None:
        if job.status == "running":
            return 0
        if job.status != "queued":
            return None
        return self._queue.index(job) + (self._running is not None)

    def jobs(self, limit: int = 100) -> list[Job]:
        """The newest jobs first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)[:limit]

    def describe(self, job: Job, *, history: bool = False) -> dict[str, Any]:
        """A consistent snapshot of a job as plain JSON."""
        with self._lock:
            d: dict[str, Any] = {
                "id": job.id, "status": job.status, "message": job.message, "position": self._position(job),
                "step": job.step, "total_steps": job.total_steps, "size": list(job.size) if job.size else None,
                "scale": job.scale, "scales": job.scales,
                "eta_s": round(job.eta_s, 1) if job.eta_s is not None and job.status == "running" else None,
                "estimate_s": round(job.estimate_s, 1) if job.estimate_s is not None else None,
                "losses": dict(job.losses), "created": job.created, "started": job.started,
                "finished": job.finished, "elapsed": job.elapsed(), "config": job.config.to_dict(),
                "inputs": job.inputs, "has_image": job.has_result or job.preview is not None,
                "has_result": job.has_result, "preview_step": job.preview_step, "download_name": job.download_name,
            }
            if history:
                d["history"] = list(job.history)
            return d

    def image(self, job: Job) -> bytes | Path | None:
        """The final image's path, or the latest preview's PNG bytes, or None."""
        with self._lock:
            if job.has_result:
                return job.result_path
            return job.preview

    def history_since(self, job: Job, start: int) -> list[dict[str, float]]:
        with self._lock:
            return job.history[start:]

    # -- the worker -----------------------------------------------------------------------------------------------
    def _changed(self, job: Job | None = None) -> None:
        self.version += 1
        if job is not None and job.status != "running":  # running jobs are saved at the end (not every step)
            self._save(job)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._closing and (self._paused or not self._queue):
                    self._lock.wait()
                if self._closing:
                    return
                job = self._queue.popleft()
                job.status, job.started = "running", time.time()
                self._running = job
                self._save(job)
                self._changed(job)
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running = None
                    self._changed()

    def _run(self, job: Job) -> None:
        status: Status = "failed"
        message = ""
        try:
            content = load_image(job.input_path(0)).named(job.inputs["content"])
            styles = [load_image(job.input_path(i + 1)).named(name)
                      for i, name in enumerate(job.inputs["styles"])]
            result = self._run_fn(content, styles, job.config.replace(device=self.device),
                                  callback=lambda step: self._on_step(job, step), stop=job.stop, progress=False,
                                  **load_masks(job.folder, job.inputs))
            result.save(job.result_path)
            status = result.status if result.status in FINAL else "failed"  # done, cancelled or diverged
            message = result.message if result.status != "done" else ""
            with self._lock:
                job.has_result = True
                job.losses = result.losses
        except WriteError as e:  # a full disk: the image stays if it was written before the loss history failed
            log.error("job %s: %s", job.id, e)
            message = f"the result could not be saved on the server: {e.reason}"
            with self._lock:
                job.has_result = job.result_path.is_file()
        except ImpastoError as e:  # bad input or settings: the user can fix it
            message = str(e)
        except Exception as e:  # a bug or an out-of-memory: log it, report it, keep serving
            log.exception("job %s failed", job.id)
            message = f"internal error ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        with self._lock:
            job.status, job.message, job.finished = status, message, time.time()
            job.preview = None  # the final image is on disk now
            self._changed(job)

    def _on_step(self, job: Job, step: Step) -> None:
        png = None
        if step.step == 1 or step.step % self.preview_every == 0 or step.step == step.total_steps:
            png = self._preview_png(job, step)
        entry = {"step": step.step, "scale": step.scale, "time": round(step.elapsed, 3),
                 **{k: float(v) for k, v in step.losses.items()}}
        with self._lock:
            job.step, job.total_steps, job.size = step.step, step.total_steps, step.size
            job.scale, job.scales, job.eta_s = step.scale, step.scales, step.eta
            job.losses = dict(step.losses)
            job.history.append(entry)
            if png is not None:
                job.preview, job.preview_step = png, step.step
            self._changed()

    def _preview_png(self, job: Job, step: Step) -> bytes:
        im: Image.Image = step.image()
        if max(im.size) > PREVIEW_MAX_SIDE:
            im = im.copy()
            im.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.Resampling.LANCZOS)
        info = PngImagePlugin.PngInfo()
        recipe = {"impasto": __version__, "status": "running", "step": step.step, "config": job.config.to_dict()}
        info.add_itxt(RECIPE_KEY, json.dumps(recipe, sort_keys=True), zip=True)
        buf = io.BytesIO()
        im.save(buf, "PNG", pnginfo=info, compress_level=1)  # fast: previews are made while the run waits
        return buf.getvalue()

    # -- persistence ----------------------------------------------------------------------------------------------
    def _save(self, job: Job) -> None:
        try:
            atomic_write(job.folder / "job.json", json.dumps(job.to_json(), indent=1).encode())
        except OSError as e:  # a WriteError (a full disk): the job goes on in memory; a restart marks it failed
            log.error("%s", e)

    def _load(self) -> None:
        """Earlier jobs from the results folder: finished ones for the gallery, queued ones back in the queue."""
        queued = []
        for folder in sorted(self.root.iterdir()):
            if results.is_trash(folder):  # a delete that the last server did not finish
                results.remove(folder)
                continue
            if not (JOB_ID.match(folder.name) and (folder / "job.json").is_file()):
                continue
            clean_stale_temps(folder)  # temporary files of a server killed while it wrote
            try:
                d = read_job_file(folder / "job.json")  # checked field by field: anyone may have written it
                job = Job(folder.name, folder, from_dict(d["config"]), d["inputs"], status=read_status(d["status"]),
                          message=d.get("message", ""), created=d["created"], started=d.get("started"),
                          finished=d.get("finished"), step=d.get("step", 0), total_steps=d.get("total_steps"),
                          losses=d.get("losses", {}), history=d.get("history", []),
                          has_result=bool(d.get("has_result")) and (folder / "result.png").is_file()
                          and not (folder / "result.png").is_symlink())
            except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
                log.warning("skipping %s: unreadable job.json (%s)", folder, printable(str(e))[:200])
                continue
            if job.status == "running":
                job.status, job.message = "failed", "the server stopped while this job ran; submit it again"
                job.finished = job.finished or time.time()
                self._save(job)
            elif job.status == "queued":
                queued.append(job)
            self._jobs[job.id] = job
        self._queue.extend(sorted(queued, key=lambda j: j.created))
