"""The video's own settings (what to take of the clip, flow, long-term frames, the later frames' schedule), apart
from the StyleConfig that every frame shares (which has ``temporal_weight``, the temporal term's weight)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from ..errors import ConfigError
from .cuts import parse_cuts
from .keyframes import parse_keyframes

FLOWS = ("dis", "farneback")
INITS = ("warped", "content")
# Steps for each frame after the first, at the final scale only, warm-started from the previous frame's output
# warped. 20, with temporal_weight 300 (StyleConfig's default), measured as consistent as 50 with 100 and the same
# style distance within 2%, at 2.3-2.5x the frames per CPU-minute (bench/video.py, bench/README.md "Video"): the
# stronger temporal pull holds what the fewer steps would let wander.
LATER_STEPS = 20
# Steps for each frame in the passes after the first (``passes``): each starts from its own result blended with its
# neighbour's, already near where the pass moves it: as many as a later frame's. bench/drift.py measured a second pass
# of 6 steps after 6-step later frames (64 px, 200 frames): a quarter of the luminance drift for 1.9x the CPU.
PASS_STEPS = 20


@dataclass(frozen=True)
class VideoSettings:
    """How a clip is taken and stylised, beyond the per-frame StyleConfig."""

    frames: int | None = None
    """How many frames to take (None: all, up to the end of the clip)."""
    start: int = 0
    """Index of the first frame to take (0: the clip's first)."""
    flow: str = "dis"
    """Optical flow between input frames: ``dis`` (OpenCV's DIS, fast) or ``farneback``."""
    long_term: tuple[int, ...] = (1,)
    """Earlier frames the temporal term compares with, as distances: 1 the previous frame; "1,2,4" adds the frames 2
    and 4 back for the pixels the closer ones do not cover (Ruder et al.'s long-term consistency)."""
    later_steps: int = LATER_STEPS
    """Steps for each frame after the first, at the final scale, warm-started (the first frame runs the full
    coarse-to-fine schedule)."""
    later_tol: float | None = None
    """Stop a later frame early, once its loss improves by less than this fraction over 20 steps (the warm start
    is often near converged already); None: the config's ``tol`` (off by default)."""
    frame_init: str = "warped"
    """Where frames after the first start: ``warped`` (the previous output warped by the flow, disoccluded pixels
    from the content, Adam's moments carried) or ``content`` (each frame on its own: the full schedule from the
    config's init, for comparison)."""
    passes: int = 1
    """Passes over the clip (Ruder et al. 2018, section 3.4): after the first (forward), alternately backward and
    forward, each frame started from its last result blended with its neighbour's in the pass's direction (warped
    onto it, where the flow is certain) and compared with it by the temporal term; passes never cross a cut. 1: one
    pass."""
    pass_steps: int = PASS_STEPS
    """Steps for each frame in the passes after the first."""
    fps: Fraction | None = None
    """Frame rate of the output (None: the input's; a folder of frames has none: 24)."""
    keep_frames: bool = False
    """Keep the PNG frames (OUTPUT.frames/) after an output video is written."""
    cuts: str | tuple[int, ...] = "auto"
    """Scene cuts, where a new shot starts afresh (the full schedule, no temporal term across the cut): ``auto``
    (detected: the flow's certain share collapses and the colour histogram jumps, see video/cuts.py), ``none``, or
    the frames that start a shot, counted from 0 in the frames taken (e.g. ``48,120``)."""
    loop: bool = False
    """Make the clip loop: the last frames are pulled toward the first frame's result (warped onto them), and the
    first frames are redone against both neighbours, so that a looping GIF has no jump at its seam."""
    style_keyframes: tuple[tuple[int, str], ...] | None = None
    """Styles over time: (frame, style image) pairs, frames counted from 0 in the frames taken, in increasing
    order (``"0:a.jpg,120:b.jpg"``); between two keyframes the style targets are blended linearly (as
    ``style_blend`` blends them), before the first and after the last the nearest keyframe's style holds."""

    def __post_init__(self) -> None:
        lt = self.long_term
        if isinstance(lt, str):
            try:
                lt = tuple(int(v) for v in lt.replace(" ", "").split(",") if v)
            except ValueError:
                raise ConfigError(f"long_term = {self.long_term!r} is invalid: give distances such as 1,2,4",
                                  key="long_term") from None
        lt = tuple(sorted(set(int(v) for v in (lt if isinstance(lt, (tuple, list)) else (lt,)))))
        object.__setattr__(self, "long_term", lt)
        if self.fps is not None:
            object.__setattr__(self, "fps", Fraction(self.fps).limit_denominator(1001))
        object.__setattr__(self, "cuts", parse_cuts(self.cuts))
        if self.style_keyframes is not None:
            object.__setattr__(self, "style_keyframes", parse_keyframes(self.style_keyframes))
        self._validate()

    def _validate(self) -> None:
        if not self.long_term or min(self.long_term) < 1 or max(self.long_term) > 1000:
            raise ConfigError(f"long_term = {','.join(map(str, self.long_term))} is invalid: give distances from 1 "
                              "to 1000, e.g. 1 or 1,2,4", key="long_term")
        if self.frames is not None and self.frames < 2:
            raise ConfigError(f"frames = {self.frames} is invalid: take at least 2 frames", key="frames")
        if self.start < 0:
            raise ConfigError(f"start = {self.start} is invalid: must be >= 0", key="start")
        if self.later_steps < 1:
            raise ConfigError(f"later_steps = {self.later_steps} is invalid: must be >= 1", key="later_steps")
        if isinstance(self.passes, bool) or not isinstance(self.passes, int) or self.passes < 1:
            raise ConfigError(f"passes = {self.passes!r} is invalid: give a whole number of passes, 1 or more (1: one "
                              "forward pass)", key="passes")
        if self.pass_steps < 1:
            raise ConfigError(f"pass_steps = {self.pass_steps} is invalid: must be >= 1", key="pass_steps")
        if self.loop and self.passes > 1:
            raise ConfigError(f"passes = {self.passes} with loop: a looped clip has its own second pass over the seam; "
                              "use one or the other", key="passes")
        if self.later_tol is not None and not 0 <= self.later_tol < 1:
            raise ConfigError(f"later_tol = {self.later_tol} is invalid: give a fraction from 0 to 1, e.g. 0.01",
                              key="later_tol")
        if self.flow not in FLOWS:
            raise ConfigError(f"flow = {self.flow!r} is invalid: choose one of {', '.join(FLOWS)}", key="flow")
        if self.frame_init not in INITS:
            raise ConfigError(f"frame_init = {self.frame_init!r} is invalid: choose one of {', '.join(INITS)}",
                              key="frame_init")
        if self.loop and self.frames is not None and self.frames < 3:
            raise ConfigError(f"frames = {self.frames} with loop: a loop needs at least 3 frames (its seam joins the "
                              "last frame to the first)", key="loop")
        if self.fps is not None and not 0 < self.fps <= 1000:
            raise ConfigError(f"fps = {self.fps} is invalid: give a rate between 0 and 1000", key="fps")

    def replace(self, **changes: Any) -> VideoSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["long_term"] = list(self.long_term)
        d["fps"] = str(self.fps) if self.fps is not None else None
        d["cuts"] = self.cuts if isinstance(self.cuts, str) else list(self.cuts)
        d["style_keyframes"] = [list(k) for k in self.style_keyframes] if self.style_keyframes else None
        return d

    def pixels_key(self) -> dict[str, Any]:
        """What changes the pixels of a frame that is already written (a rerun must match it to continue; taking
        more frames, another rate or keeping the frames does not)."""
        d = self.to_dict()
        # a loop's seam joins its last frame to its first, a backward pass runs from the last: more frames change the
        # frames already written
        for k in ("frames", "fps", "keep_frames") if not self.loop and self.passes == 1 else ("fps", "keep_frames"):
            d.pop(k)
        if self.passes == 1:  # nor do the settings of passes that do not run (a clip started before they were
            d.pop("passes")  # settings continues)
            d.pop("pass_steps")
        if self.later_tol is None:
            d.pop("later_tol")
        return d


VIDEO_FIELDS = tuple(f.name for f in fields(VideoSettings))


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword settings → (StyleConfig's, VideoSettings')."""
    video = {k: v for k, v in settings.items() if k in VIDEO_FIELDS}
    return {k: v for k, v in settings.items() if k not in VIDEO_FIELDS}, video
