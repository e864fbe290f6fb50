"""What flows out of a run (Step events), what flows in (a StopToken), and the one status vocabulary.

Callbacks observe; they do not mutate the optimisation. A ``Step`` is plain data (numbers, strings, tuples) so that
it pickles: a remote worker sends it to its driver as it is. The engine never puts an image in a Step; the api
attaches a renderer for the process that ran the step (``Step.image()``), and that renderer is dropped when a Step
is pickled or copied to another process.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, get_args

# One vocabulary for runs (core), web jobs and sweep variants.
#   queued     waiting for a worker (a web job in the queue, a sweep variant not started yet)
#   running    steps are being taken
#   done       every step of the schedule was taken (or ``tol`` ended a scale early)
#   cancelled  stopped through a StopToken (Ctrl-C, a web cancel); the last image is kept and can be resumed
#   diverged   the loss or the pixels became NaN/Inf; the last finite image is kept
#   failed     an error ended it (bad input found late, out of memory, a worker lost twice)
Status = Literal["queued", "running", "done", "cancelled", "diverged", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)
FINAL: frozenset[str] = frozenset({"done", "cancelled", "diverged", "failed"})


@dataclass(frozen=True)
class Step:
    """One optimisation step of one run (``index`` is the run's place in a batch, ``frame`` a video frame's)."""

    step: int  # 1-based, counted over all scales
    total_steps: int
    scale: int  # 0-based index of the scale
    scales: int  # how many scales the schedule has
    size: tuple[int, int]  # (height, width) at this scale
    losses: dict[str, float]  # "total" and one entry per term of the objective ("content", "style", "tv", ...)
    elapsed: float  # seconds since the run started
    index: int = 0
    frame: int | None = None
    eta: float | None = None  # seconds left in the run: the api's estimate (impasto.progress.Eta); None from the engine
    render: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    def image(self) -> Any:
        """The current image: a PIL image from ``impasto.stylize`` (in the process that ran the step)."""
        if self.render is None:
            raise RuntimeError("this Step carries no image (it was made by the engine, or sent from another process)")
        return self.render()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle as plain data: the renderer closes over this process's tensors and stays behind.
        return (_make_step, ({f.name: getattr(self, f.name) for f in fields(self) if f.name != "render"},))


def _make_step(data: dict[str, Any]) -> Step:
    return Step(**data)


class Callback(Protocol):
    def __call__(self, step: Step) -> None: ...


class StopToken:
    """A cooperative stop: set it from any thread (a signal handler, a web request); the loop ends the step.

    ``StopToken.shared()`` makes one that also works across processes (a ``multiprocessing`` event: hand it to a
    child process when starting it, and a ``stop()`` in either process is seen by both).
    """

    def __init__(self, event: Any = None) -> None:
        self._event = event if event is not None else threading.Event()
        self._reason: Any = None
        self._local_reason = ""
        self._shared = event is not None

    @classmethod
    def shared(cls, context: Any = None) -> StopToken:
        ctx = context or multiprocessing.get_context()
        token = cls(ctx.Event())
        token._reason = ctx.Array("c", 200)  # the reason, readable in the other process
        return token

    def stop(self, reason: str = "stopped") -> None:
        if self._reason is not None:
            self._reason.value = reason.encode("utf-8", "replace")[:199]
        self._local_reason = reason
        self._event.set()

    @property
    def reason(self) -> str:
        if self._reason is not None and self._reason.value:
            return self._reason.value.decode("utf-8", "replace")
        return self._local_reason

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    def __getstate__(self) -> dict[str, Any]:
        if not self._shared:
            raise TypeError("a plain StopToken works within one process; use StopToken.shared() across processes")
        return self.__dict__

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
