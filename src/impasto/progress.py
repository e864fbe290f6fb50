"""Progress for people: the bar of a run or a sweep (terminal, notebook widget or plain text) and the ETA behind it.

A coarse-to-fine run's steps do not cost the same. Each scale has about twice the pixels of the one before, and a
step's time is a fixed cost (Python, kernel launches) plus one proportional to the arithmetic (the convolutions).
tqdm's own estimate (time so far / steps so far × steps left) therefore reads several times too low while the small
scales run; extrapolating the first scale's time per pixel (what this module did before) reads 1.5-2× too high,
because the fixed cost is a larger share of a small scale's step. ``Eta`` starts from the cost model's seconds per
step of each scale (impasto.forecast: the plan's FLOPs and this machine's calibration, fixed cost included), which
is the ETA before anything is timed when the machine is calibrated; as steps are timed, the model is scaled by the
ratio of measured to predicted seconds (the scale now running weighing in as its steps accumulate). The api hands
the same estimate to callbacks (``Step.eta``), so the web page shows the number the terminal shows.

Where the bar goes: a widget in a Jupyter kernel when ipywidgets is installed (``pip install 'impasto[notebook]'``);
in a terminal, tqdm's text bar (a sweep adds the current batch's bar under the sweep's); anywhere else (a notebook
without widgets, a pipe, a log file) one text bar redrawn with ``\\r``, never the cursor-movement escapes that
nested bars need, which a non-terminal prints as garbage.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from .io.streams import SafeStream

if TYPE_CHECKING:
    from .core.events import Step

Mode = Literal["widget", "terminal", "text"]
BLEND_STEPS = 2  # a scale's own measured rate outweighs the model's prediction for it after this many steps
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{left}]{losses}"
CORE_TERMS = ("total", "content", "style")  # always on the bar; other terms only when non-zero


# -- the estimate ------------------------------------------------------------------------------------------------------
def fit(points: Sequence[tuple[float, float]]) -> Callable[[float], float] | None:
    """Seconds per step as a function of work, from (work, seconds per step) points: the least-squares line
    ``a + b · work``. One point (or one work value): proportional (a = 0). A slope ≤ 0 (noise, or fixed costs that
    swamp the pixels' share): flat, at the largest work's rate."""
    if not points:
        return None
    n = len(points)
    mw = sum(w for w, _ in points) / n
    mt = sum(t for _, t in points) / n
    sww = sum((w - mw) ** 2 for w, _ in points)
    if sww <= (1e-9 * mw) ** 2:
        b0 = mt / mw if mw > 0 else 0.0
        return lambda w: b0 * w
    b = sum((w - mw) * (t - mt) for w, t in points) / sww
    if b <= 0:
        flat = max(points)[1]
        return lambda w: flat
    a = mt - b * mw
    if a < 0:  # no step costs less than nothing: the best line through the origin
        b0 = sum(w * t for w, t in points) / sum(w * w for w, _ in points)
        return lambda w: b0 * w
    return lambda w: a + b * w


def ratio(points: Sequence[tuple[float, float]]) -> Callable[[float], float] | None:
    """Seconds per step as a function of the predicted seconds, from (predicted, measured) points (one a segment).

    One point: the prediction scaled by measured / predicted (the machine is slower or faster than calibrated).
    Two or more: the least-squares line ``a + b · predicted``. A prediction is ``o + f`` (the fixed cost and the
    FLOPs' share); if the calibration got their proportion wrong, the truth is ``α·o + β·f = (α − β)·o + β·(o + f)``,
    a line in the prediction, which two scales determine. A slope ≤ 0 (noise): the ratio again."""
    if not points:
        return None
    k = sum(t for _, t in points) / max(sum(p for p, _ in points), 1e-12)
    n = len(points)
    mp = sum(p for p, _ in points) / n
    spp = sum((p - mp) ** 2 for p, _ in points)
    if n == 1 or spp <= (0.05 * mp) ** 2:
        return lambda p: k * p
    mt = sum(t for _, t in points) / n
    b = sum((p - mp) * (t - mt) for p, t in points) / spp
    if b <= 0:
        return lambda p: k * p
    a = mt - b * mp
    return lambda p: max(a + b * p, 0.0)


class Eta:
    """Seconds left in a schedule of segments (a run's scales) whose steps cost differently.

    ``steps[i]`` is segment i's number of steps, ``work[i]`` the work of one of its steps: the model's predicted
    seconds (``predicted=True``, from impasto.forecast), or pixels × runs when there is no model (then the
    measured seconds are fitted as ``a + b · work``). ``setup[i]``: predicted seconds at the segment's start
    (its targets), counted for the segments still to come. ``calibrated``: the predictions are this machine's
    seconds, so they are the estimate before any step is timed.
    ``update(segment, step, elapsed)`` records a step: the segment it belongs to, the count of steps so far and the
    clock. A segment's rate is the median of its steps' durations: the first step of a scale, which also builds
    that scale's targets, and the slow first steps of a process (allocations, kernel selection) or a moment of
    contention do not skew it. Pure: no clock of its own, no I/O.
    """

    def __init__(self, steps: Sequence[int], work: Sequence[float], *, predicted: bool = False,
                 setup: Sequence[float] | None = None, calibrated: bool = False) -> None:
        if len(steps) != len(work) or setup is not None and len(setup) != len(steps):
            raise ValueError("one work value per segment")
        self.steps, self.work = list(steps), [float(w) for w in work]
        self.setup = [float(u) for u in setup] if setup is not None else [0.0] * len(steps)
        self.fit = ratio if predicted else fit
        self.calibrated = predicted and calibrated
        self._entry: dict[int, float] = {}  # segment → its first step's duration, setup included (when known)
        self._durations: dict[int, list[float]] = {}  # segment → the durations of its later steps
        self._base: dict[int, int] = {}  # segment → steps counted before it
        self._last: tuple[int, int, float] | None = None  # (segment, step, clock) of the latest step
        self.step = 0

    @classmethod
    def for_schedule(cls, sizes: Sequence[tuple[int, int]], steps: Sequence[int], runs: int = 1, *,
                     step_seconds: Sequence[float] | None = None, setup: Sequence[float] | None = None,
                     calibrated: bool = False) -> Eta:
        """A run's (or a batch's) schedule: every scale's (h, w) and its steps (``api.schedule``), with the cost
        model's seconds a step and at each scale's start when there is one (impasto.forecast)."""
        if step_seconds is not None:
            return cls(steps, step_seconds, predicted=True, setup=setup, calibrated=calibrated)
        return cls(steps, [h * w * runs for h, w in sizes])

    @property
    def segment(self) -> int | None:
        return self._last[0] if self._last is not None else None

    def update(self, segment: int, step: int, elapsed: float) -> None:
        last = self._last
        if segment not in self._base:
            self._durations[segment] = []
            if last is not None and last[0] == segment - 1:
                self._base[segment] = last[1]
                if step > last[1]:
                    self._entry[segment] = (elapsed - last[2]) / (step - last[1])
            else:  # the first step seen (a resumed run starts mid-schedule): its own duration is unknown
                self._base[segment] = min(sum(self.steps[:segment]), step - 1)
        elif last is not None and step > last[1]:
            self._durations[segment].append((elapsed - last[2]) / (step - last[1]))
        self._last, self.step = (segment, step, elapsed), step

    def rate(self, segment: int) -> tuple[float, int] | None:
        """(seconds per step, steps it rests on) of a segment, or None before it has a timed step."""
        durations = sorted(self._durations.get(segment, ()))
        if durations:
            mid = len(durations) // 2
            median = durations[mid] if len(durations) % 2 else (durations[mid - 1] + durations[mid]) / 2
            return median, len(durations)
        return (self._entry[segment], 1) if segment in self._entry else None

    def remaining(self) -> float | None:
        """Seconds left, or None while nothing has been timed yet (and the predictions are not this machine's)."""
        cur = self.segment
        if cur is None:
            return self.total() if self.calibrated else None
        fit = self.fit
        earlier = [(self.work[i], r[0]) for i in self._base if i != cur and (r := self.rate(i)) is not None]
        model = fit(earlier)
        if model is None and self.calibrated:
            model = lambda w: w
        # A scale's first step also built its targets: with a model to go by, that step is not its rate.
        own = self.rate(cur) if self._durations.get(cur) or model is None else None
        if own is None and model is None:
            return None
        if own is None:
            here = model(self.work[cur])  # type: ignore[misc]
        elif model is None or not earlier:  # measured steps outweigh a calibration made at another time
            here = own[0]
        else:  # the scale's own rate takes over as its steps accumulate
            weight = own[1] / (own[1] + BLEND_STEPS)
            here = weight * own[0] + (1 - weight) * model(self.work[cur])
        ahead = fit([*earlier, (self.work[cur], here)])
        assert ahead is not None
        left_here = max(self.steps[cur] - (self.step - self._base[cur]), 0)
        k = ahead(1.0) if self.fit is ratio else 1.0  # the setups scale as the steps do
        return left_here * here + sum(n * ahead(w) + k * u for n, w, u in
                                      zip(self.steps[cur + 1:], self.work[cur + 1:], self.setup[cur + 1:]))

    def total(self) -> float:
        """The predicted seconds of the whole schedule (the steps and the setups), before anything is timed."""
        return sum(n * w + u for n, w, u in zip(self.steps, self.work, self.setup))


def work_left(sizes: Sequence[tuple[int, int]], steps: Sequence[int], done: int = 0) -> float:
    """Pixel-steps of a schedule after its first ``done`` steps (what a sweep's ETA weighs the variants by)."""
    total = 0.0
    for (h, w), n in zip(sizes, steps):
        skip = min(done, n)
        done -= skip
        total += (n - skip) * h * w
    return total


# -- what the bar says ----------------------------------------------------------------------------------------------
def scale_text(step: Step) -> str:
    """``scale 2/4 · 181 px`` (the long side of the scale now running)."""
    return f"scale {step.scale + 1}/{step.scales} · {max(step.size)} px"


def losses_text(losses: Mapping[str, float]) -> str:
    """``total=1.23e+05 content=3.1e+04 style=9.2e+04``, then any other term that is not zero (tv, ...)."""
    shown = [k for k in CORE_TERMS if k in losses] + [k for k, v in losses.items() if k not in CORE_TERMS and v]
    return " ".join(f"{k}={losses[k]:.3g}" for k in shown)


def clock(seconds: float | None) -> str:
    """01:52, 1:02:03; ? when unknown."""
    if seconds is None:
        return "?"
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


def announce(text: str) -> None:
    """One line on stderr before a bar opens (a run's estimate); a full or closed stderr is no error."""
    SafeStream(sys.stderr).write(text + "\n")
    SafeStream(sys.stderr).flush()


# -- where the bar goes ---------------------------------------------------------------------------------------------
def in_kernel() -> bool:
    """True in a Jupyter kernel (not a terminal IPython). IPython is never imported here: only looked up."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:
        return False


def have_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def mode() -> Mode:
    if in_kernel() and have_widgets():
        return "widget"
    isatty = getattr(sys.stderr, "isatty", None)
    return "terminal" if callable(isatty) and isatty() else "text"


@cache
def _bar_class(widget: bool) -> type:
    if widget:
        from tqdm.notebook import tqdm as base
    else:
        from tqdm.std import tqdm as base

    class Bar(base):  # type: ignore[valid-type, misc]
        """tqdm's bar with our ETA (``{left}``) and losses (``{losses}``) in its format."""

        left = "?"
        losses = ""

        @property
        def format_dict(self) -> dict[str, Any]:
            return {**super().format_dict, "left": self.left, "losses": self.losses}

    return Bar


def open_bar(total: int, desc: str, *, where: Mode, position: int = 0, leave: bool = True, initial: int = 0) -> Any:
    kw: dict[str, Any] = dict(total=total, desc=desc, unit="step", leave=leave, initial=initial, bar_format=BAR_FORMAT)
    if where != "widget":
        # position 0 never moves the cursor; a pipe gets a redraw a second rather than ten
        # A stderr that is full (2>/dev/full) or closed (2>&-) must never stop a run: its errors are swallowed.
        kw.update(file=SafeStream(sys.stderr), position=position, dynamic_ncols=True, mininterval=0.1 if where == "terminal" else 1)
    return _bar_class(where == "widget")(**kw)


_KEEP: Any = object()


def show(bar: Any, *, n: int | None = None, add: int = 0, desc: str | None = None, left: float | None = _KEEP,
         losses: Mapping[str, float] | None = None) -> None:
    """Move ``bar`` (to ``n``, or by ``add``) with new words (``left``: seconds, None: unknown; not given: kept);
    tqdm redraws at most every ``mininterval``."""
    if desc is not None:
        bar.set_description_str(desc, refresh=False)
    if left is not _KEEP:
        bar.left = clock(left)
    if losses is not None:
        bar.losses = " " + losses_text(losses)
    moved = n - bar.n if n is not None else add
    bar.update(moved)
    if not moved:
        # tqdm redraws on a move only (and, once it has learnt a rate, only on moves of several units): a bar whose
        # count stands still while its words change (a video's frame, whose steps are in the words) would go quiet.
        now = time.time()
        if now - getattr(bar, "last_print_t", 0.0) >= getattr(bar, "mininterval", 0.1):
            bar.refresh()
            bar.last_print_t = now


# -- a run, a sweep -------------------------------------------------------------------------------------------------
class RunProgress:
    """One run's (or batch's) progress: the ETA of its Steps and, when asked for, a bar.

    Every run of a batch reports every step: the first report of a step moves the estimate, the last redraws the
    bar with that run's losses."""

    def __init__(self, sizes: Sequence[tuple[int, int]], steps: Sequence[int], runs: int = 1, *,
                 bar: bool = True, step_seconds: Sequence[float] | None = None,
                 setup: Sequence[float] | None = None, calibrated: bool = False) -> None:
        self.eta = Eta.for_schedule(sizes, steps, runs, step_seconds=step_seconds, setup=setup, calibrated=calibrated)
        self.runs, self.left = runs, None
        self.prefix = f"{runs} runs · " if runs > 1 else ""
        first = f"scale 1/{len(sizes)} · {max(sizes[0])} px"
        self.bar = open_bar(sum(steps), self.prefix + first, where=mode()) if bar else None
        if self.bar is not None:
            self.bar.left = clock(self.eta.remaining())  # the model's, before a step is timed (when calibrated)
            self.bar.refresh()
        self.started = False

    def update(self, step: Step) -> float | None:
        """Take one Step; → the seconds left in the run (None until a step has been timed)."""
        if step.index == 0:
            self.eta.update(step.scale, step.step, step.elapsed)
            self.left = self.eta.remaining()
        if self.bar is not None and step.index == self.runs - 1:
            if not self.started and step.step > 1:  # a resumed run: the bar starts where it stands
                self.bar.n = self.bar.last_print_n = step.step - 1
            self.started = True
            show(self.bar, n=step.step, desc=self.prefix + scale_text(step), left=self.left, losses=step.losses)
        return self.left

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class SweepBars:
    """A sweep's progress: a bar over every variant's steps and, in a terminal or a widget, the current batch's bar
    under it. As plain text (a notebook without widgets, a pipe) it is one bar, the sweep's, naming the batch.

    The sweep's ETA is the current batch's (``Step.eta``, per scale) plus the pixel-steps of the variants still
    waiting at the seconds per pixel-step measured so far (``work``: each variant's pixel-steps left)."""

    def __init__(self, enabled: bool, total: int, work: Mapping[str, float] | None = None) -> None:
        self.enabled, self.planned = enabled, 0
        self.work = dict(work or {})
        self.done, self.t0 = 0.0, time.monotonic()
        self.overall: Any = None
        self.current: Any = None
        self.current_key: Any = None
        self.where: Mode = mode() if enabled else "text"
        self.nested = self.where != "text"
        if enabled:
            self.overall = open_bar(total, "sweep", where=self.where)

    def left(self, names: Sequence[str], step: Step) -> float | None:
        if not self.done:
            return None
        rate = (time.monotonic() - self.t0) / self.done  # seconds per pixel-step, over the sweep so far
        batch = step.eta if step.eta is not None else rate * sum(self.work.get(n, 0.0) for n in names)
        return batch + rate * sum(w for n, w in self.work.items() if n not in names)

    def update(self, batch: Any, step: Step, last: bool) -> None:
        """One Step of ``batch`` (an executors.Batch: ``index``, ``names``)."""
        if not self.enabled:
            return
        name, pixels = batch.names[step.index], step.size[0] * step.size[1]
        self.work[name] = max(self.work.get(name, 0.0) - pixels, 0.0)
        self.done += pixels
        key = (batch.index, batch.names)
        names = ", ".join(batch.names)
        names = names if len(names) <= 40 else names[:39] + "…"
        what = f"batch {batch.index}/{self.planned} ({len(batch.names)}: {names})"
        if key != self.current_key:
            self.end_batch()
            self.current_key = key
            if self.nested:
                self.current = open_bar(step.total_steps, what, where=self.where, position=1, leave=False,
                                        initial=step.step - 1)
        if not last:
            show(self.overall, add=1)
            return
        left = self.left(batch.names, step)
        if self.current is not None:
            show(self.overall, add=1, left=left)
            show(self.current, n=step.step, desc=f"{what} · {scale_text(step)}", left=step.eta, losses=step.losses)
        else:
            show(self.overall, add=1, desc=f"sweep · batch {batch.index}/{self.planned} · {scale_text(step)}",
                 left=left, losses=step.losses)

    def end_batch(self) -> None:
        if self.current is not None:
            self.current.close()
        self.current, self.current_key = None, None

    def close(self) -> None:
        self.end_batch()
        if self.overall is not None:
            self.overall.close()
