"""``sweep()``: an experiment → batches → pictures, losses, sheet, plots and report, resumable.

Each variant is keyed by a hash of its full config and the input images (``store.run_key``). A rerun skips the
finished ones, continues the interrupted ones from their checkpoints, and starts the rest; ``force`` starts all
afresh. Pending variants are grouped by ``core.optimize.batch_key`` (and, when continuing, by where they stopped) and
each group runs as one batch through VGG; how a batch runs is the executor's business (``executors.Executor``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..api import (
    ImageLike,
    RunState,
    Step,
    StopToken,
    batch_key,
    estimate_run,
    fingerprint,
    resume_state,
    schedule,
    total_steps,
)
from ..api import run_states as states
from ..arguments import check_sweep
from ..errors import ConfigError, OutputError
from ..estimate import duration
from ..io.images import LoadedImage, load_image
from ..io.locks import lock_folder
from ..progress import SweepBars, announce, work_left
from .executors import Batch, BatchOutcome, Executor, LocalExecutor
from .quick import fast_forwarded
from .report import publish
from .results import SweepResult, SweepStep, VariantResult, sweep_status
from .spec import MAX_VARIANTS, Experiment, differences, load_experiment, slug
from .store import RunFolder, run_key


def sweep(
    experiment: str | os.PathLike[str] | Experiment,
    *,
    content: ImageLike | None = None,
    styles: Sequence[ImageLike] | ImageLike | None = None,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    executor: Executor | None = None,
    max_batch: int | None = None,
    callback: Callable[[SweepStep], None] | None = None,
    stop: StopToken | None = None,
    progress: bool = True,
    refresh: float | None = 30.0,
    plots: bool = True,
    max_variants: int = MAX_VARIANTS,
    fast_forward: int | None = None,
    **overrides: Any,
) -> SweepResult:
    """Run every variant of an experiment (a TOML file or an ``Experiment``) and write its sheet, plots and report.

    ``content``/``styles`` default to the file's ``[experiment]`` inputs; keyword overrides (``size=128,
    steps=100``) apply to the base and every variant; then ``fast_forward=10`` runs each variant in a tenth of its
    steps at ten times its learning rate (Adam only: a quick look at a long study, ``quick.fast_forwarded``).
    Results go to ``output`` (default ``study/<file stem>``).
    A rerun skips finished variants and continues interrupted ones; ``force=True`` reruns everything.
    ``max_batch`` caps how many variants share a batch (1: one after another). ``callback(event)`` sees every step
    (``event.variant``, ``event.step``); ``stop`` ends the sweep after the current step, keeping checkpoints.
    The sheet, plots and report are rewritten after every batch and, while one runs, every ``refresh`` seconds
    (None or 0: only after each batch). The loss plots need matplotlib (``pip install 'impasto[sweep]'``): without
    it, or with ``plots=False``, the sweep runs and its report says the plots are missing. A file of more than
    ``max_variants`` variants (counted before any is built) is refused.
    """
    t0 = time.perf_counter()
    styles = check_sweep(experiment, content=content, styles=styles, output=output, force=force, executor=executor,
                         max_batch=max_batch, callback=callback, stop=stop, progress=progress, refresh=refresh,
                         plots=plots)  # at the door: a wrong argument is one line, before any work
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment, max_variants=max_variants)
    exp = exp.with_overrides(**overrides)
    if fast_forward is not None:
        exp = fast_forwarded(exp, fast_forward)
    if max_batch is not None and max_batch < 1:
        raise ConfigError(f"max_batch = {max_batch} is invalid: give 1 or more (1 runs the variants one by one)")
    c_img, s_imgs = _inputs(exp, content, styles)
    _check_blends(exp, len(s_imgs))
    inputs_fp = fingerprint(c_img.image, *(s.image for s in s_imgs))
    folder = RunFolder(Path(output) if output is not None else Path("study") / exp.name)
    folder.create()
    with lock_folder(folder.root, "impasto sweep"):  # one sweep per folder: a second one is refused, naming this
        folder.clean()  # temporary files a killed sweep left
        return _sweep(exp, folder, c_img, s_imgs, inputs_fp, overrides, fast_forward, force, executor, max_batch, callback, stop,
                      progress, refresh, plots, t0)


def _sweep(exp: Experiment, folder: RunFolder, c_img: LoadedImage, s_imgs: list[LoadedImage], inputs_fp: str,
           overrides: dict[str, Any], fast_forward: int | None, force: bool, executor: Executor | None, max_batch: int | None,
           callback: Callable[[SweepStep], None] | None, stop: StopToken | None, progress: bool,
           refresh: float | None, plots: bool, t0: float) -> SweepResult:

    records: list[VariantResult] = []
    saved_states: dict[str, RunState] = {}
    for v in exp.variants:
        h, w = c_img.image.height, c_img.image.width
        final = v.config.result_size(h, w)
        rec = VariantResult(name=v.name, config=v.config, changes=differences(v.config, exp.base),
                            key=run_key(v.config, inputs_fp), slug=slug(v.name), note=v.note,
                            total_steps=total_steps(v.config, final))
        st = _reuse(folder, rec, force, c_img, s_imgs)
        if st is not None:
            saved_states[rec.name] = st
        records.append(rec)
    applied = {k: exp.base.to_dict()[k] for k in overrides}  # coerced: "128" from the CLI → 128
    if fast_forward not in (None, 1):
        applied["fast_forward"] = fast_forward
    result = SweepResult(exp, folder.root, records, c_img, s_imgs, overrides=applied)
    run = _Run(result, folder, executor or LocalExecutor(), saved_states, stop or StopToken(), callback, progress,
               refresh, plots, max_batch)
    error: BaseException | None = None
    try:
        run.loop()
    except BaseException as e:
        error = e
        raise
    finally:
        result.elapsed = time.perf_counter() - t0
        stopped = run.stop.stopped or isinstance(error, KeyboardInterrupt)
        run.cut_off(error, stopped)
        result.status = sweep_status(records, stopped=stopped)
        run.close()
        try:
            publish(result, plots=plots)
        except OutputError:  # a full disk: the error that ended the sweep, if any, is the one to tell
            if error is None:
                raise
    return result


def _inputs(exp: Experiment, content: ImageLike | None,
            styles: Sequence[ImageLike] | ImageLike | None) -> tuple[LoadedImage, list[LoadedImage]]:
    if content is None:
        content = exp.content
    if styles is None:
        styles = list(exp.styles)
    elif not isinstance(styles, (list, tuple)):
        styles = [styles]
    if content is None or not styles:
        what = "content image (--content)" if content is None else "style image(s) (--style)"
        raise ConfigError(f"no {what}: give it, or set content/styles in the experiment's [experiment] table")
    mp = exp.base.max_pixels
    return load_image(content, max_pixels=mp), [load_image(s, max_pixels=mp) for s in styles]


def _check_blends(exp: Experiment, n_styles: int) -> None:
    """Every variant's style_blend must have one weight per style image: say which variant, before any work."""
    where = str(exp.path) if exp.path else exp.name
    for v in exp.variants:
        blend = v.config.style_blend
        if blend is not None and len(blend) != n_styles:
            line = f":{v.line}" if v.line else ""
            raise ConfigError(
                f"{where}{line}: variant {v.name!r}: style_blend = {'/'.join(f'{b:g}' for b in blend)} has "
                f"{len(blend)} weights for {n_styles} style image(s); give {len(blend)} style images (--style A B)")


def _reuse(folder: RunFolder, rec: VariantResult, force: bool, content: LoadedImage,
           styles: list[LoadedImage]) -> RunState | None:
    """Take over what an earlier run left: a finished variant, or the checkpoint of an interrupted one."""
    saved = folder.read_record(rec.slug)
    if force or saved is None or saved.get("key") != rec.key:
        folder.clear(rec.slug)  # another config or other inputs made these files: they do not belong to rec
        return None
    if saved.get("status") in ("done", "diverged") and folder.restore(rec, saved):
        rec.skipped = True
        return None
    ckpt = folder.checkpoint(rec.slug)
    if saved.get("status") in ("cancelled", "failed") and ckpt.is_file():
        try:
            st = resume_state(ckpt, rec.config, content, styles)
        except ConfigError:
            folder.clear(rec.slug)  # unreadable, or made for other inputs: start afresh
            return None
        folder.restore(rec, saved)
        rec.status, rec.steps_done, rec.history = "cancelled", st.step, list(st.history[0]) if st.history else []
        return st
    folder.clear(rec.slug)
    return None


def _work_left(v: VariantResult, content: LoadedImage) -> float:
    """Pixel-steps left in a variant's schedule: what the sweep's ETA weighs it by."""
    h, w = content.image.height, content.image.width
    final = v.config.result_size(h, w)
    return work_left(*schedule(v.config, final), v.steps_done)


class _Run:
    """One call of ``sweep``: plans batches, hands them to the executor, files what comes back."""

    def __init__(self, result: SweepResult, folder: RunFolder, executor: Executor, saved: dict[str, RunState],
                 stop: StopToken, callback: Callable[[SweepStep], None] | None, progress: bool,
                 refresh: float | None, plots: bool, max_batch: int | None) -> None:
        self.result, self.folder, self.executor, self.states = result, folder, executor, saved
        self.stop, self.callback, self.refresh, self.plots, self.max_batch = stop, callback, refresh, plots, max_batch
        self.by_name = {v.name: v for v in result.variants}
        self.live: dict[str, Step] = {}
        self.last_publish = time.monotonic()
        self.publish_time = 0.0  # seconds the last redraw took
        self.sweep_info = {"experiment": str(result.experiment.path or result.experiment.name)}
        self.progress, self.bars = progress, SweepBars(False, 0)  # the bars open once the estimate is said
        self.n_batches = 0

    def loop(self) -> None:
        publish(self.result, plots=self.plots)
        if self.stop.stopped:
            return
        pending = [v for v in self.result.variants if not v.finished]
        batches = self.plan(pending)
        if self.progress and batches:  # the first line: what it will take here
            announce(self.estimate(batches))
        self.bars = SweepBars(self.progress, sum(v.total_steps - v.steps_done for v in pending),
                              {v.name: _work_left(v, self.result.content) for v in pending})
        self.bars.planned = self.n_batches
        for outcome in self.executor.run(batches, on_step=self.on_step, stop=self.stop):
            self.file(outcome)
            self.bars.end_batch()
            # Batches that end close together (a cluster's workers) share a redraw: the next waits twice as long
            # as the last took, so that redrawing takes at most a third of the driver's time. The end redraws all.
            if time.monotonic() - self.last_publish >= 2 * self.publish_time:
                t = time.monotonic()
                publish(self.result, plots=self.plots)
                self.last_publish = time.monotonic()
                self.publish_time = self.last_publish - t

    def estimate(self, batches: Sequence[Batch]) -> str:
        """``impasto: 8 variants in 2 batches: about 6 min here``: each batch's estimate (as ``impasto stylize``
        prints it), for the share of its steps still to run."""
        seconds = 0.0
        for b in batches:
            fc, _ = estimate_run(b.content, list(b.styles), b.configs[0], runs=len(b.names))
            v = self.by_name[b.names[0]]
            seconds += fc.seconds * (v.total_steps - v.steps_done) / max(v.total_steps, 1)
        n, k = sum(len(b.names) for b in batches), len(batches)
        return (f"impasto: {n} variant{'s' if n > 1 else ''} in {k} batch{'es' if k > 1 else ''}: "
                f"{duration(seconds)} here")

    def plan(self, pending: list[VariantResult]) -> list[Batch]:
        """Group by batch_key (and by where a continued run stands); cut groups to ``max_batch``."""
        groups: dict[tuple[Any, ...], list[VariantResult]] = {}
        for v in pending:
            st = self.states.get(v.name)
            key = (batch_key(v.config), states.position(st) if st is not None else None)
            groups.setdefault(key, []).append(v)
        batches = []
        for group in groups.values():
            size = self.max_batch or len(group)
            for i in range(0, len(group), size):
                chunk = group[i:i + size]
                held = [self.states[v.name] for v in chunk if v.name in self.states]
                self.n_batches += 1
                batches.append(Batch(self.n_batches, tuple(v.name for v in chunk), tuple(v.config for v in chunk),
                                     self.result.content, tuple(self.result.styles),
                                     states.merge(held) if held else None))
        return batches

    def on_step(self, batch: Batch, step: Step) -> None:
        name = batch.names[step.index]
        v = self.by_name[name]
        v.status, v.steps_done, v.elapsed = "running", step.step, step.elapsed
        v.history.append({"step": step.step, "scale": step.scale, "time": step.elapsed, **step.losses})
        self.live[name] = step
        last = step.index == len(batch.names) - 1
        self.bars.update(batch, step, last)
        if self.callback is not None:
            self.callback(SweepStep(name, batch.index, step))
        if last and self.refresh and time.monotonic() - self.last_publish >= self.refresh:
            for n in batch.names:  # show the pictures as they are now
                if n in self.live and self.live[n].render is not None:
                    self.by_name[n].image = self.live[n].image()
            publish(self.result, plots=self.plots)
            self.last_publish = time.monotonic()

    def file(self, outcome: BatchOutcome) -> None:
        """Record a batch's results on disk and in the records."""
        batch, results = outcome.batch, outcome.results
        if outcome.error:  # nothing came back (a remote worker was lost on every try): its variants failed
            for name in batch.names:
                v = self.by_name[name]
                self.live.pop(name, None)
                v.status, v.message = "failed", outcome.error
                self.folder.save_record(v)  # a checkpoint an earlier session wrote stays: a rerun continues it
            return
        # The engine checks each run of a batch for NaN/Inf on its own: a diverged variant stands still at its last
        # finite image while its batch-mates go on, so nothing needs to run again.
        for i, (name, r) in enumerate(zip(batch.names, results)):
            v = self.by_name[name]
            self.live.pop(name, None)
            v.image, v.history, v.message = r.image, list(r.history), r.message
            v.steps_done = int(r.history[-1]["step"]) if r.history else v.steps_done
            v.elapsed = r.state.elapsed if r.state is not None else r.elapsed
            v.batch_size = len(batch.names)
            v.peak_memory = max(outcome.peak_memory or 0, v.peak_memory or 0) or None
            v.memory_kind = outcome.memory_kind
            st = states.take(r.state, [i]) if r.state is not None else None
            if r.status == "cancelled":
                v.status = "cancelled"
                if st is not None:
                    self.states[name] = st
                    # The checkpoint and its record first: a disk that fills up after them leaves it resumable.
                    self.folder.save_checkpoint(v, st, r.recipe["inputs_fingerprint"])
                    self.folder.save_record(v)
            else:
                v.status = r.status
                self.states.pop(name, None)
            self.folder.save_result(v, r, self.sweep_info)
            if v.finished:
                self.folder.checkpoint(v.slug).unlink(missing_ok=True)

    def cut_off(self, error: BaseException | None, stopped: bool) -> None:
        """Variants still ``running`` when the sweep ends: their batch never came back (an error, an interrupt, an
        executor that lost it), so nothing of this session's steps was filed."""
        why = f"the sweep ended with {type(error).__name__} during its batch" if error else "its batch never ended"
        for v in self.result.variants:
            if v.status == "running":
                v.status = "cancelled" if stopped else "failed"
                v.message = v.message or why

    def close(self) -> None:
        self.bars.close()
