"""``impasto.batch`` / ``impasto batch``: every content image with every style (or one blend of them), one set of
settings, one picture per pair in one folder; a rerun skips what exists and continues what was interrupted.

Pairs that share a content image share a batch through VGG: the batch holds the job's style images, and each
pair's run weighs them one-hot (``style_blend = 0,1,0``), which blends in target space to exactly that style's
target. The style set is always the whole job's, so a pair's settings (and its checkpoint) do not depend on what
else is pending. On a Ray executor the batches are cut smaller until every worker has one (``fan out``).

```
OUT/
  CONTENT-STYLE.png        one per pair (recipe inside; ``batch`` in it names the pair)
  CONTENT-STYLE.png.ckpt   an interrupted pair's state (a rerun continues it; deleted when it finishes)
  sheet.png                contents down, styles across
  batch.json               every pair: status, time, losses, message
```
Like a sweep's runner this module plans and is the only writer; executors only run batches.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..api import (
    RunState,
    Status,
    Step,
    StopToken,
    batch_key,
    resolve_config,
    resume_state,
    save_picture,
    save_run_checkpoint,
)
from ..api import run_states as states
from ..config import StyleConfig
from ..errors import ConfigError, ImageError, OutputError
from ..io.fetch import is_url
from ..io.images import LoadedImage, load_image
from ..io.recipe import save_image
from .batch_sheet import MAX_ROWS, THUMB, render_batch_sheet
from .executors import Batch, BatchOutcome, Executor, LocalExecutor
from .results import SweepStep
from .sources import expand
from .spec import slug
from .store import write_json


@dataclass
class Pair:
    """One output: a content image painted with one style (or the blend of all)."""

    name: str  # the output's stem
    content: str
    styles: tuple[str, ...]  # the style it was painted in (all of them for a blend)
    row: int  # its place in the sheet: content row, style column
    column: int
    path: Path
    config: StyleConfig
    status: Status = "queued"
    message: str = ""
    steps_done: int = 0
    elapsed: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    skipped: bool = False  # its picture was there before this call

    @property
    def checkpoint(self) -> Path:
        return self.path.with_name(self.path.name + ".ckpt")  # as ``impasto stylize`` names it


@dataclass
class BatchJob:
    """What ``batch`` did: every pair, and the files (``sheet``, ``manifest``)."""

    output: Path
    contents: list[str]
    styles: list[str]
    blend: bool
    pairs: list[Pair]
    status: Status = "running"  # then done | cancelled | failed
    elapsed: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ran(self) -> list[str]:
        return [p.name for p in self.pairs if not p.skipped and p.status != "queued"]


def _stem(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1] if is_url(source) else Path(source).stem
    return slug(name.rsplit(".", 1)[0] if is_url(source) else name)[:60] or "image"


def plan_pairs(contents: list[str], styles: list[str], cfg: StyleConfig, out: Path, *, blend: bool) -> list[Pair]:
    """The pairs and their file names (``photo-starry.png``; a second ``photo`` from another folder is
    ``photo-2-starry.png``). A blend is one pair per content (``photo-a+b.png``)."""
    stems: dict[str, int] = {}
    rows = []
    for c in contents:
        s = _stem(c)
        stems[s] = stems.get(s, 0) + 1
        rows.append(s if stems[s] == 1 else f"{s}-{stems[s]}")
    columns = [_stem(s) for s in styles]
    pairs = []
    for r, (c, stem) in enumerate(zip(contents, rows)):
        if blend:
            pairs.append(Pair(f"{stem}-{'+'.join(columns)}"[:200], c, tuple(styles), r, 0, Path(), cfg))
            continue
        for k, s in enumerate(styles):
            one_hot = tuple(1.0 if j == k else 0.0 for j in range(len(styles))) if len(styles) > 1 else None
            pairs.append(Pair(f"{stem}-{columns[k]}", c, (s,), r, k, Path(), cfg.replace(style_blend=one_hot)))
    seen: dict[str, int] = {}
    for p in pairs:  # two styles with one stem: number the later ones
        seen[p.name] = seen.get(p.name, 0) + 1
        p.name = p.name if seen[p.name] == 1 else f"{p.name}-{seen[p.name]}"
        p.path = out / f"{p.name}.png"
    return pairs


def batch(
    contents: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    styles: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    output: str | os.PathLike[str],
    config: StyleConfig | dict[str, Any] | None = None,
    blend: bool = False,
    executor: Executor | None = None,
    max_batch: int | None = None,
    force: bool = False,
    callback: Callable[[SweepStep], None] | None = None,
    stop: StopToken | None = None,
    progress: bool = True,
    **overrides: Any,
) -> BatchJob:
    """Paint every content image (files, folders, globs, URLs) in every style, with one config, into ``output``.

    ``blend=True`` (or a config with ``style_blend``): one picture per content in the blend of all styles.
    A picture already in ``output`` is skipped (``force=True`` repaints it); an interrupted pair continues from its
    checkpoint. ``max_batch`` caps how many pairs share a batch; ``callback`` sees every step (``event.variant`` is
    the pair's name); ``stop`` ends the job after the current step, keeping checkpoints.
    """
    t0 = time.perf_counter()
    cfg = resolve_config(config, overrides)
    blend = blend or cfg.style_blend is not None
    c_list = expand([contents] if isinstance(contents, (str, os.PathLike)) else contents, "content images")
    s_list = expand([styles] if isinstance(styles, (str, os.PathLike)) else styles, "style images")
    if cfg.style_blend is not None and len(cfg.style_blend) != len(s_list):
        raise ConfigError(f"style_blend has {len(cfg.style_blend)} weights for {len(s_list)} style images; give "
                          "one weight per style", key="style_blend")
    if max_batch is not None and max_batch < 1:
        raise ConfigError(f"max_batch = {max_batch} is invalid: give 1 or more (1 runs the pairs one by one)")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: is a file; give -o a folder for the pictures")
    out.mkdir(parents=True, exist_ok=True)
    style_images = tuple(load_image(s, max_pixels=cfg.max_pixels) for s in s_list)
    job = BatchJob(out, c_list, s_list, blend, plan_pairs(c_list, s_list, cfg, out, blend=blend))
    run = _Run(job, style_images, executor or LocalExecutor(), stop or StopToken(), callback, progress, max_batch,
               force)
    error: BaseException | None = None
    try:
        run.loop()
    except BaseException as e:
        error = e
        raise
    finally:
        stopped = run.stop.stopped or isinstance(error, KeyboardInterrupt)
        for p in job.pairs:
            if p.status == "running":  # its batch never came back
                p.status = "cancelled" if stopped else "failed"
                p.message = p.message or (f"the job ended with {type(error).__name__}" if error else "lost")
        finished = all(p.status in ("done", "diverged") for p in job.pairs)
        job.status = "done" if finished else "cancelled" if stopped else "failed"
        job.elapsed = time.perf_counter() - t0
        run.close()
        run.publish()
    return job


class _Run:
    def __init__(self, job: BatchJob, styles: tuple[LoadedImage, ...], executor: Executor, stop: StopToken,
                 callback: Callable[[SweepStep], None] | None, progress: bool, max_batch: int | None,
                 force: bool) -> None:
        self.job, self.styles, self.executor, self.stop = job, styles, executor, stop
        self.callback, self.max_batch, self.force = callback, max_batch, force
        self.by_name = {p.name: p for p in job.pairs}
        self.states: dict[str, RunState] = {}
        self.n_batches = 0
        self.bar: Any = None
        self.thumbs: dict[str, Image.Image | None] = {}  # content sources and pair names → the sheet's thumbnails
        self.style_thumbs = [thumbnail(s.image) for s in styles]
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=0, desc="batch", unit="step", dynamic_ncols=True)

    def loop(self) -> None:
        for p in self.job.pairs:
            if p.path.exists() and not self.force:
                p.status, p.skipped = "done", True
            elif self.force:
                p.checkpoint.unlink(missing_ok=True)
        todo: dict[str, list[Pair]] = {}
        for p in self.job.pairs:
            if not p.skipped:
                todo.setdefault(p.content, []).append(p)
        workers = getattr(self.executor, "capacity", lambda: 1)()  # a Ray executor: how many batches at once
        contents = list(todo)
        chunk = 1 if workers == 1 else 2 * workers  # content images held in memory at once
        for i in range(0, len(contents), chunk):
            if self.stop.stopped:
                return
            loaded = []
            for c in contents[i:i + chunk]:
                try:
                    loaded.append((load_image(c, max_pixels=todo[c][0].config.max_pixels), todo[c]))
                except ImageError as e:  # one unreadable photo of hundreds: its pairs fail, the others go on
                    for p in todo[c]:
                        p.status, p.message = "failed", str(e)
            for image, pairs in loaded:
                self.thumbs[pairs[0].content] = thumbnail(image.image)
            batches = self.plan(loaded, workers)
            for outcome in self.executor.run(batches, on_step=self.on_step, stop=self.stop):
                self.file(outcome)
            self.publish()

    def plan(self, loaded: list[tuple[LoadedImage, list[Pair]]], workers: int) -> list[Batch]:
        groups: list[tuple[LoadedImage, list[Pair]]] = []
        for image, pairs in loaded:
            by_key: dict[tuple[Any, ...], list[Pair]] = {}
            for p in pairs:
                st = self._resume(p, image)
                by_key.setdefault((batch_key(p.config), states.position(st) if st else None), []).append(p)
            for ps in by_key.values():
                size = self.max_batch or len(ps)
                groups += [(image, ps[j:j + size]) for j in range(0, len(ps), size)]
        while len(groups) < workers and any(len(ps) > 1 for _, ps in groups):  # fan out: a batch for each worker
            k = max(range(len(groups)), key=lambda j: len(groups[j][1]))
            image, ps = groups.pop(k)
            groups += [(image, ps[:len(ps) // 2]), (image, ps[len(ps) // 2:])]
        batches = []
        for image, ps in groups:
            held = [self.states[p.name] for p in ps if p.name in self.states]
            self.n_batches += 1
            batches.append(Batch(self.n_batches, tuple(p.name for p in ps), tuple(p.config for p in ps), image,
                                 self.styles, states.merge(held) if held else None))
            if self.bar is not None:
                from ..api import total_steps

                c = ps[0].config
                final = c.result_size(image.image.height, image.image.width)
                self.bar.total += sum(total_steps(c, final) - p.steps_done for p in ps)
                self.bar.refresh()
        return batches

    def _resume(self, p: Pair, image: LoadedImage) -> RunState | None:
        if not p.checkpoint.is_file():
            return None
        try:
            st = resume_state(p.checkpoint, p.config, image, list(self.styles))
        except ConfigError:  # other settings or other images: start afresh
            p.checkpoint.unlink(missing_ok=True)
            return None
        self.states[p.name], p.steps_done = st, st.step
        return st

    def on_step(self, batch: Batch, step: Step) -> None:
        p = self.by_name[batch.names[step.index]]
        p.status, p.steps_done, p.elapsed = "running", step.step, step.elapsed
        if self.bar is not None:
            self.bar.update(1)
            done = sum(q.status in ("done", "diverged") for q in self.job.pairs)
            self.bar.set_postfix_str(f"{done}/{len(self.job.pairs)} pictures", refresh=False)
        if self.callback is not None:
            self.callback(SweepStep(p.name, batch.index, step))

    def file(self, outcome: BatchOutcome) -> None:
        for i, name in enumerate(outcome.batch.names):
            p = self.by_name[name]
            if outcome.error:
                p.status, p.message = "failed", outcome.error
                continue
            r = outcome.results[i]
            p.status, p.message, p.losses = r.status, r.message, r.losses  # type: ignore[assignment]
            p.elapsed = r.state.elapsed if r.state is not None else r.elapsed
            p.steps_done = int(r.history[-1]["step"]) if r.history else p.steps_done
            if r.status == "cancelled" and r.state is not None:
                save_run_checkpoint(p.checkpoint, dataclasses.replace(r, state=states.take(r.state, [i])))
                continue
            recipe = {**r.recipe, "batch": {"content": p.content, "styles": list(p.styles), "pair": p.name}}
            save_picture(r, p.path, recipe)  # its float pixels, at its bit depth, with its alpha
            self.thumbs[p.name] = thumbnail(r.image)
            p.checkpoint.unlink(missing_ok=True)
            self.states.pop(name, None)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def publish(self) -> None:
        """Redraw the sheet and rewrite batch.json. Pictures made before this call are read once each."""
        job = self.job
        rows = min(len(job.contents), MAX_ROWS)
        for p in job.pairs:
            if p.row >= rows:
                continue
            if p.content not in self.thumbs:
                self.thumbs[p.content] = _thumb(lambda: load_image(p.content, max_pixels=p.config.max_pixels).image)
            if p.name not in self.thumbs and p.path.is_file():
                self.thumbs[p.name] = _thumb(lambda: _open(p.path))
        sheet = render_batch_sheet(job, self.thumbs, self.style_thumbs, self.thumbs)
        job.files["sheet"] = job.output / "sheet.png"
        save_image(sheet, job.files["sheet"])
        _manifest(job)


def thumbnail(im: Image.Image) -> Image.Image:
    small = im.copy()
    small.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return small


def _thumb(read: Callable[[], Image.Image]) -> Image.Image | None:
    try:
        return thumbnail(read())
    except (ImageError, OSError):  # unreadable now: the sheet shows a grey cell
        return None


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _manifest(job: BatchJob) -> None:
    p0 = job.pairs[0].config if job.pairs else None
    job.files["manifest"] = job.output / "batch.json"
    write_json(job.files["manifest"], {
        "status": job.status, "elapsed": round(job.elapsed, 3), "contents": job.contents, "styles": job.styles,
        "blend": job.blend,
        "config": (p0 if job.blend else p0.replace(style_blend=None)).to_dict() if p0 is not None else {},
        "pairs": [{"name": p.name, "file": p.path.name, "content": p.content, "styles": list(p.styles),
                   "status": p.status, "skipped": p.skipped, "steps_done": p.steps_done,
                   "elapsed": round(p.elapsed, 3), "losses": p.losses, "message": p.message} for p in job.pairs],
    })
