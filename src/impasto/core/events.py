"""What flows out of a run (Step events, the Result) and what flows in (a StopToken).

Callbacks observe; they do not mutate the optimisation. ``Step.image()`` is made lazily, only when asked for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Step:
    """One optimisation step of one run (``index`` is the run's place in a batch)."""

    step: int  # 1-based, counted over all scales
    total_steps: int
    scale: int  # 0-based index of the scale
    size: tuple[int, int]  # (height, width) at this scale
    losses: dict[str, float]  # "total", "content", "style", "tv"
    elapsed: float  # seconds since the run started
    index: int = 0
    render: Callable[[], Any] | None = field(default=None, repr=False, compare=False)

    def image(self) -> Any:
        """The current image: a (3, H, W) tensor in [0, 1] from the engine, a PIL image from ``impasto.stylize``."""
        if self.render is None:
            raise RuntimeError("this Step carries no image")
        return self.render()


class Callback(Protocol):
    def __call__(self, step: Step) -> None: ...


class StopToken:
    """A cooperative stop: set it from any thread (a signal handler, a web request); the loop ends the step."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def stop(self, reason: str = "stopped") -> None:
        self.reason = reason
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()
