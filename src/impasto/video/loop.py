"""The frame loop: ``stylize_video(input, styles, output, ...)`` (Ruder, Dosovitskiy & Brox 2016).

Frame 0 runs the config's full coarse-to-fine schedule. Each later frame t starts from frame t − 1's output warped
onto it by the optical flow (t → t − 1), its disoccluded pixels (mask 0) taken from the content, with Adam's moments
carried; it runs ``later_steps`` steps at the final scale only, with the temporal term comparing it with the outputs
of the frames ``long_term`` back, warped the same way, each under its closest-first certainty mask. The style
targets are built once for the clip (``api.FrameRunner``). Frames are written as they finish (``store.FrameStore``):
a stop loses at most the frame in progress, and the same call continues there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .. import __version__
from ..api import FrameRunner, Step, StopToken, resolve_config
from ..config import StyleConfig
from ..errors import OutputError
from ..estimate import duration
from ..io.files import atomic_write
from ..progress import announce
from .bar import ClipProgress
from .consistency import certainty, closest_first, warp
from .container import Clip, check_video_output, is_video_output, read_clip, write_video
from .flow import FlowCache, provider
from .settings import VideoSettings, split_settings
from .store import FrameStore


@dataclass
class VideoResult:
    """A finished (or stopped) clip."""

    output: Path
    status: str  # done | cancelled (a rerun continues it)
    message: str
    frames: int  # frames written, by this call and earlier ones
    total: int  # frames in the clip as taken
    ran: int  # frames stylised by this call
    fps: Fraction
    size: tuple[int, int]  # (width, height)
    elapsed: float
    records: list[dict[str, Any]] = field(default_factory=list)  # per frame: steps, seconds, final losses
    notes: list[str] = field(default_factory=list)
    recipe: Path | None = None


def _frame_hash(frame: Any) -> str:
    return hashlib.sha256(frame.tobytes()).hexdigest()[:16]


class _VideoRun:
    def __init__(self, clip: Clip, runner: FrameRunner, store: FrameStore, cfg: StyleConfig, vs: VideoSettings,
                 callback: Callable[[Step], None] | None, stop: StopToken | None, progress: bool) -> None:
        self.clip, self.runner, self.store, self.cfg, self.vs = clip, runner, store, cfg, vs
        self.callback, self.stop, self.progress = callback, stop, progress
        self.flows = FlowCache(clip.frames, provider(vs.flow), store.flow_dir)
        self.warm = vs.frame_init == "warped"
        self.later = cfg.replace(start_size=None, steps=vs.later_steps, first_steps=None, scale_steps=None) \
            if self.warm else cfg
        self.outputs: dict[int, torch.Tensor] = {}  # frame → the engine's output, for the frames still needed
        self.state: Any = None  # the previous frame's RunState (its Adam moments), when it ran in this call
        self.bar: Any = None

    def earlier(self, t: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor | None]:
        """The temporal term's pairs for frame t (each earlier output warped onto t, its closest-first mask) and the
        mask of the closest one as it is (for the first image)."""
        warped, masks = [], []
        for j in self.vs.long_term:
            s = t - j
            if s < 0:
                break
            back, fwd = self.flows(t, s), self.flows(s, t)
            masks.append(certainty(back, fwd).to(self.runner.device))
            warped.append(warp(self.outputs[s], back))
        return list(zip(warped, closest_first(masks))), (masks[0] if masks else None)

    def frame(self, t: int) -> Any:
        picture = Image.fromarray(self.clip.frames[t])
        if t == 0 or not self.warm and self.cfg.temporal_weight == 0:
            return self.runner.run(picture, self.cfg, index=t, callback=self.on_step, stop=self.stop)
        pairs, first_mask = self.earlier(t)
        init = None
        if self.warm:
            content = self.runner.content(picture)[0]
            init = pairs[0][0] * first_mask + content * (1 - first_mask)  # disoccluded pixels from the content
        return self.runner.run(picture, self.later if self.warm else self.cfg, init=init,
                               previous=self.state if self.warm else None,
                               temporal=pairs if self.cfg.temporal_weight > 0 else (), index=t,
                               callback=self.on_step, stop=self.stop)

    def on_step(self, step: Step) -> None:
        left = self.bar.update(step) if self.bar is not None else None
        if self.callback is not None:
            self.callback(dataclasses.replace(step, eta=left))

    def estimate(self, done: int) -> tuple[float, Callable[[int], tuple[list[int], list[float], list[float]]], bool]:
        """(the seconds the frames ``done`` … the last will take here, each frame's plan for the ETA, whether the
        machine is calibrated). Later frames build no style targets (the clip's are kept), so their start costs
        nothing predicted: what they do between frames (flow, writing) is measured as the clip goes."""
        first, later = self.runner.forecast(self.cfg), self.runner.forecast(self.later)

        def plan(t: int) -> tuple[list[int], list[float], list[float]]:
            fc = first if t == 0 or not self.warm else later
            e = fc.estimate
            return list(e.steps), list(e.step_seconds), list(e.setup_seconds) if t == 0 else [0.0] * len(e.steps)

        seconds = sum(sum(n * s + u for n, s, u in zip(*plan(t))) for t in range(done, len(self.clip.frames)))
        return seconds, plan, first.calibration is not None

    def resume_from(self, done: int) -> None:
        for j in self.vs.long_term:
            if done - j >= 0:
                self.outputs[done - j] = self.runner.engine_image(self.store.load(done - j))

    def record(self, t: int, out: Any) -> dict[str, Any]:
        last = {k: v for k, v in (out.history[-1] if out.history else {}).items() if k not in ("step", "scale", "time")}
        return {"frame": t, "steps": len(out.history), "seconds": round(out.elapsed, 3),
                "cpu_seconds": round(out.cpu, 3), "status": out.status, "losses": last}

    def run(self, done: int) -> tuple[str, str, int]:
        """Stylise frames ``done`` … the last; → (status, message, frames stylised)."""
        n = len(self.clip.frames)
        self.resume_from(done)
        seconds, plan, calibrated = self.estimate(done)
        if self.progress:  # the first line: what it will take here
            announce(f"impasto: {n - done} frames at {self.runner.size[1]}x{self.runner.size[0]}: "
                     + (f"{duration(seconds)} here" if calibrated else "not timed (impasto doctor measures this "
                                                                         "machine)"))
        self.bar = ClipProgress(n, done, plan, calibrated=calibrated, bar=self.progress)
        ran = 0
        try:
            for t in range(done, n):
                out = self.frame(t)
                if out.status == "cancelled":
                    return "cancelled", f"{out.message}; frames 0-{t - 1} are written" if t else out.message, ran
                rec = self.record(t, out)
                recipe = {**self.recipe(), "frame": t, "frame_record": rec}
                self.store.save(t, out.picture, recipe, rec)
                ran += 1
                self.outputs[t] = out.image
                self.outputs.pop(t - max(self.vs.long_term), None)
                self.state = out.state
                self.bar.frame_done(t, rec["losses"])
        finally:
            self.bar.close()
        return "done", "", ran

    def recipe(self) -> dict[str, Any]:
        return {"impasto": __version__, "kind": "video", "input": str(self.clip.source), "start": self.clip.start,
                "styles": self.runner.names["styles"], "config": self.cfg.to_dict(), "video": self.vs.to_dict(),
                "fps": str(self.clip.fps), "device": str(self.runner.device)}


def _settings(cfg: StyleConfig, vs: VideoSettings, runner: FrameRunner) -> dict[str, Any]:
    config = cfg.to_dict()
    for k in ("device", "save_every", "max_pixels"):  # these do not change the pixels
        config.pop(k, None)
    return {"config": config, "video": vs.pixels_key(), "styles": runner.fingerprint}


def _check_not_input(source: Path, output: Path) -> None:
    try:
        same = output.exists() and os.path.samefile(source, output)
    except OSError:
        same = False
    if same:
        raise OutputError(f"{output}: is also the input; choose another output so that it is not overwritten")


def stylize_video(
    input: str | os.PathLike[str],
    styles: Sequence[Any] | Any,
    output: str | os.PathLike[str],
    config: StyleConfig | dict[str, Any] | None = None,
    *,
    video: VideoSettings | None = None,
    callback: Callable[[Step], None] | None = None,
    stop: StopToken | None = None,
    progress: bool = True,
    force: bool = False,
    **settings: Any,
) -> VideoResult:
    """Stylise a clip with temporal consistency: ``input`` a video file (mp4, mov, webm, mkv, avi, GIF) or a folder
    of frames; ``output`` a video file (by extension: same frame rate, the input's audio) or a folder of PNG frames.

    ``config`` (and StyleConfig keywords: ``size=256``, ``temporal_weight=0``) is every frame's; ``video`` (and
    VideoSettings keywords: ``long_term=(1, 2, 4)``, ``frames=30``) says what to take and how frames follow each
    other. ``callback(step)`` gets every step of every frame (``step.frame``). ``stop`` ends after the current step;
    the frames written so far stay, and the same call continues at the first missing one (``force``: start again).
    """
    style_settings, video_settings = split_settings(settings)
    cfg = resolve_config(config, style_settings)
    vs = (video or VideoSettings()).replace(**video_settings) if video_settings else (video or VideoSettings())
    out = Path(output)
    as_video = is_video_output(out)
    if as_video:
        check_video_output(out, force=force)
    store = FrameStore(out.with_name(out.name + ".frames") if as_video else out)
    store.check()
    _check_not_input(Path(input), out)
    t0 = time.perf_counter()
    fit = cfg.result_size
    clip = read_clip(input, start=vs.start, count=vs.frames, fit=fit, fps=vs.fps)
    runner = FrameRunner(Image.fromarray(clip.frames[0]), styles, cfg)
    done = store.open(_settings(cfg, vs, runner), [_frame_hash(f) for f in clip.frames], force=force)
    job = _VideoRun(clip, runner, store, cfg, vs, callback, stop, progress)
    status, message, ran = job.run(done)
    notes = [*clip.notes, *runner.notes]
    store.manifest.update(status=status, recipe=job.recipe(), notes=notes)
    store.write_manifest()
    result = VideoResult(output=out, status=status, message=message, frames=done + ran, total=len(clip.frames),
                         ran=ran, fps=vs.fps or clip.fps, size=(clip.size[1], clip.size[0]),
                         elapsed=time.perf_counter() - t0, records=list(store.manifest["frames"]), notes=notes)
    if status == "done" and as_video:
        _finish_video(result, job, store, clip, vs)
    elif status == "done":
        result.recipe = store.folder / "video.json"
    return result


def _finish_video(result: VideoResult, job: _VideoRun, store: FrameStore, clip: Clip, vs: VideoSettings) -> None:
    """Encode the written frames into the output video, its recipe beside it (OUTPUT.json) and in its metadata."""
    recipe = {**job.recipe(), "frames": result.records, "notes": result.notes, "status": result.status}
    comment = json.dumps({k: recipe[k] for k in ("impasto", "kind", "config", "video", "styles")}, default=str)
    makers = [lambda i=i: store.load(i) for i in range(result.frames)]
    result.notes += write_video(result.output, makers, vs.fps or clip.fps, audio_from=clip, comment=comment)
    sidecar = result.output.with_name(result.output.name + ".json")
    recipe["notes"] = result.notes
    atomic_write(sidecar, json.dumps(recipe, indent=1, sort_keys=True, default=str).encode(), what="the recipe")
    result.recipe = sidecar
    if not vs.keep_frames:
        store.remove()
