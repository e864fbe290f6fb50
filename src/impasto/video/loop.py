"""``stylize_video(input, styles, output, ...)``: a clip read, its cuts found, its frames stylised (video/run.py:
the frame loop of Ruder, Dosovitskiy & Brox 2016, with shots, loops and styles over time) and the output written.

The style targets are built once for the clip (``api.FrameRunner``). Frames are written as they finish
(``store.FrameStore``): a stop loses at most the frame in progress, and the same call continues there.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from ..api import FrameRunner, Step, StopToken, resolve_config
from ..config import StyleConfig
from ..errors import ConfigError, OutputError
from ..io.files import atomic_write
from .container import Clip, check_video_output, is_video_output, read_clip, write_video
from .cuts import resolve as resolve_cuts
from .flow import FlowCache, provider
from .keyframes import check_range, check_styles, style_images
from .masks import MovingMasks
from .run import VideoRun
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
    styles: Sequence[Any] | Any | None,
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
    other (``style_keyframes={0: "a.jpg", 120: "b.jpg"}`` instead of ``styles``: styles over time; ``cuts``,
    ``loop``). ``callback(step)`` gets every step of every frame (``step.frame``). ``stop`` ends after the current step;
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
    given = [] if styles is None or (isinstance(styles, (list, tuple)) and not styles) else styles
    check_styles(vs.style_keyframes, given, cfg.style_blend)
    if vs.style_keyframes and (cfg.masks is not None or cfg.mask_colors is not None):
        raise ConfigError("masks give each style image a region and style_keyframes change the style over time: "
                          "use one or the other (keep_mask works with both)", key="style_keyframes")
    if not given and not vs.style_keyframes:
        raise ConfigError("give at least one style image (or style_keyframes)", key="styles")
    t0 = time.perf_counter()
    fit = cfg.result_size
    clip = read_clip(input, start=vs.start, count=vs.frames, fit=fit, fps=vs.fps)
    if vs.style_keyframes:
        check_range(vs.style_keyframes, len(clip.frames))
    if vs.loop and len(clip.frames) < 3:
        raise ConfigError(f"loop: {input} gives {len(clip.frames)} frames; a loop needs at least 3 (its seam joins "
                          "the last frame to the first)", key="loop")
    flows = FlowCache(clip.frames, provider(vs.flow), store.flow_dir)
    if isinstance(vs.cuts, tuple):
        resolve_cuts(vs.cuts, clip.frames, flows)  # a cut past the end: one line, before any work
    masks = MovingMasks(cfg, len(clip.frames), clip.size, flows, vs.cuts if isinstance(vs.cuts, tuple) else ())
    runner = FrameRunner(Image.fromarray(clip.frames[0]), style_images(vs.style_keyframes) if vs.style_keyframes
                         else given, cfg, masks.at(0) if masks.given else None)
    done = store.open(_settings(cfg, vs, runner), [_frame_hash(f) for f in clip.frames], force=force)
    cuts, measured = resolve_cuts(vs.cuts, clip.frames, flows)  # auto: the flows the loop needs, computed now
    masks.cuts = set(cuts)
    store.manifest.update(cuts=list(cuts), cut_measures=measured)
    job = VideoRun(clip, runner, store, flows, cfg, vs, cuts, callback, stop, progress,
                   masks if masks.moving else None)
    status, message, ran = job.run(done)
    notes = [*clip.notes, *runner.notes]
    if cuts:
        notes.append(f"scene cuts at frame{'s' if len(cuts) > 1 else ''} {', '.join(map(str, cuts))}: each starts "
                     "its shot afresh")
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


def _finish_video(result: VideoResult, job: VideoRun, store: FrameStore, clip: Clip, vs: VideoSettings) -> None:
    """Encode the written frames into the output video, its recipe beside it (OUTPUT.json) and in its metadata."""
    recipe = {**job.recipe(), "frames": result.records, "notes": result.notes, "status": result.status,
              "cut_measures": store.manifest.get("cut_measures", [])}
    comment = json.dumps({k: recipe[k] for k in ("impasto", "kind", "config", "video", "styles")}, default=str)
    makers = [lambda i=i: store.load(i) for i in range(result.frames)]
    result.notes += write_video(result.output, makers, vs.fps or clip.fps, audio_from=clip, comment=comment)
    sidecar = result.output.with_name(result.output.name + ".json")
    recipe["notes"] = result.notes
    atomic_write(sidecar, json.dumps(recipe, indent=1, sort_keys=True, default=str).encode(), what="the recipe")
    result.recipe = sidecar
    if not vs.keep_frames:
        store.remove()
