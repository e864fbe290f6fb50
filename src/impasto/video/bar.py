"""A clip's progress: one bar over its frames that says, on every frame, the frame, its step and the time left.

The time left is impasto.progress's ``Eta`` over the clip's frames laid end to end (frame 0's scales, then each later
frame's, as segments), started from the cost model's seconds a step (``FrameRunner.forecast``) and corrected by the
measured steps; plus what happens between two frames (the optical flow, writing the frame), measured as the gap
between one frame's last step and the next one's first, beyond a step's own time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..api import Step
from ..progress import Eta, mode, open_bar, show


class ClipProgress:
    """Frames ``first`` … ``frames - 1``; ``plans[t]`` is frame t's (steps, predicted seconds a step, predicted
    seconds at each scale's start) per scale. ``update(step)`` → the seconds left in the clip."""

    def __init__(self, frames: int, first: int, plans: Callable[[int], tuple[Sequence[int], Sequence[float],
                                                                          Sequence[float]]], *,
                 calibrated: bool, bar: bool, clock: Callable[[], float] = time.perf_counter,
                 label: Callable[[int], str] | None = None, extra: int = 0) -> None:
        """``label(t)``: what the bar says of frame t (default ``frame t+1/frames``); ``extra``: frames the bar
        counts beyond the clip's (a loop's seam pass), shown without a time left."""
        self.frames, self.clock = frames, clock
        self.label = label or (lambda t: f"frame {t + 1}/{frames}")
        steps: list[int] = []
        work: list[float] = []
        setup: list[float] = []
        self.segment0: dict[int, int] = {}  # frame → its first segment
        self.step0: dict[int, int] = {}  # frame → steps of the clip before it
        for t in range(first, frames):
            self.segment0[t], self.step0[t] = len(steps), sum(steps)
            n, per, up = plans(t)
            steps += n
            work += per
            setup += up
        self.eta = Eta(steps, work, predicted=True, setup=setup, calibrated=calibrated)
        self.t0 = clock()
        self.last: tuple[int, float] | None = None  # (frame, clock) of the latest step
        self.durations: list[float] = []  # the current frame's steps
        self.gaps: list[float] = []  # between frames, beyond a step's time
        self.left = self.eta.remaining()
        self.bar: Any = open_bar(frames + extra, self.label(min(first, frames - 1)), where=mode(), initial=first) \
            if bar else None
        if self.bar is not None:
            show(self.bar, left=self.left)

    def update(self, step: Step) -> float | None:
        now, t = self.clock(), step.frame or 0
        if self.last is not None:
            frame, then = self.last
            if frame != t and self.durations:
                self.gaps.append(max(0.0, now - then - statistics.median(self.durations)))
                self.durations = []
            elif frame == t:
                self.durations.append(now - then)
        self.last = (t, now)
        self.eta.update(self.segment0[t] + step.scale, self.step0[t] + step.step, now - self.t0)
        left = self.eta.remaining()
        if left is not None and self.gaps:
            left += statistics.median(self.gaps) * (self.frames - 1 - t)
        self.left = left
        if self.bar is not None:
            show(self.bar, n=t, desc=f"{self.label(t)} · step {step.step}/{step.total_steps}",
                 left=left, losses=step.losses)
        return left

    def frame_done(self, t: int, losses: dict[str, float]) -> None:
        if self.bar is not None:
            show(self.bar, n=t + 1, desc=self.label(min(t + 1, self.frames - 1)), losses=losses)
            self.bar.refresh()  # once a frame, whatever tqdm's interval: the next frame (a cut, a shot) is said

    def note(self, step: Step | None = None, add: int = 0) -> None:
        """A step or a frame beyond the clip's plan (a loop's seam pass): said, without a time left."""
        if self.bar is None:
            return
        if step is None:
            show(self.bar, add=add)
        else:
            show(self.bar, desc=f"{self.label(step.frame or 0)} · step {step.step}/{step.total_steps}", add=add,
                 losses=step.losses)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
