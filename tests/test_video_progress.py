"""A clip's bar on a synthetic clip (a fake clock, steps of known cost): frame, step and time left on every frame, and
the time left within 30% of the truth once frame 0's first steps are timed. No VGG, no timing of this machine."""

from __future__ import annotations

import io
import random
import re
import sys

import pytest

from impasto import progress
from impasto.api import Step
from impasto.video.bar import ClipProgress

FRAMES = 12
FIRST = ([40, 20, 20], [0.3, 0.6, 1.2], [0.5, 1.0, 2.0])  # frame 0: three scales (steps, s a step, s at the start)
LATER = ([25], [1.2], [0.0])  # later frames: the final scale only


def plans(t: int):  # type: ignore[no-untyped-def]
    return FIRST if t == 0 else LATER


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def play(bar: ClipProgress, clock: Clock, *, speed: float, flow: float, seed: int = 0):  # type: ignore[no-untyped-def]
    """Run the clip against the fake clock: each step takes its predicted time × ``speed`` (±10%), each frame after
    the first ``flow`` seconds before its first step. → (clock, seconds left as the bar said) after every step."""
    rng, seen = random.Random(seed), []
    for t in range(FRAMES):
        steps, per, setup = plans(t)
        if t:
            clock.now += flow
        k = 0
        for scale, (n, s, u) in enumerate(zip(steps, per, setup)):
            clock.now += u * speed
            for _ in range(n):
                k += 1
                clock.now += s * speed * (1 + rng.uniform(-0.1, 0.1))
                left = bar.update(Step(step=k, total_steps=sum(steps), scale=scale, scales=len(steps),
                                       size=(96, 128), losses={"total": 1.0}, elapsed=0.0, frame=t))
                seen.append((clock.now, left))
        bar.frame_done(t, {"total": 1.0})
    return seen


@pytest.mark.parametrize(("speed", "flow"), [(1.0, 0.0), (0.6, 3.0), (1.8, 8.0)])
def test_the_clips_time_left_is_within_30_percent(speed: float, flow: float) -> None:
    clock = Clock()
    bar = ClipProgress(FRAMES, 0, plans, calibrated=True, bar=False, clock=clock)
    seen = play(bar, clock, speed=speed, flow=flow)
    end = seen[-1][0]
    for i, (now, left) in enumerate(seen[:-1]):
        assert left is not None
        if i >= 5:  # after frame 0's first timed steps
            # the flow between frames is learnt at the second frame: until then it is unknown
            limit = 0.3 if flow == 0 or i >= sum(FIRST[0]) + 1 else 0.6
            assert abs(left / (end - now) - 1) <= limit, (i, left, end - now)


def test_the_bar_says_frame_step_and_time_left_on_every_frame(monkeypatch) -> None:
    out = io.StringIO()
    real = progress.open_bar

    def every_step(*args, **kw):  # type: ignore[no-untyped-def]
        bar = real(*args, **kw)
        bar.mininterval = 0  # every redraw kept (the fake clock is not tqdm's)
        return bar

    monkeypatch.setattr(sys, "stderr", out)  # the bar's text, here
    monkeypatch.setattr("impasto.video.bar.open_bar", every_step)
    clock = Clock()
    bar = ClipProgress(FRAMES, 0, plans, calibrated=True, bar=True, clock=clock)
    play(bar, clock, speed=1.0, flow=1.0)
    bar.close()
    text = out.getvalue()
    for t in range(1, FRAMES + 1):
        total = sum(plans(t - 1)[0])
        shown = re.findall(rf"frame {t}/{FRAMES} · step (\d+)/{total}.*?<([0-9:?]+)\]", text)
        assert shown, f"frame {t} never showed its steps: {text[:300]!r}"
        assert all(left != "?" for _, left in shown), f"frame {t}: time left unknown"
        assert int(shown[-1][0]) == total  # counted to its last step
