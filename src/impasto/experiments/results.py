"""What a sweep returns: one VariantResult per variant (its picture, losses, time, memory) and the SweepResult."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from PIL import Image

from ..api import STATUSES, Status, Step
from ..config import StyleConfig
from ..io.images import LoadedImage
from .spec import Experiment

FINISHED = ("done", "diverged")  # a rerun skips these (a diverged run would diverge again)
# Words that sweeps wrote before runs, web jobs and sweeps shared one vocabulary (impasto.api.STATUSES).
OLD_STATUS: dict[str, Status] = {"pending": "queued", "incomplete": "failed"}


def read_status(word: Any) -> Status:
    """A status read from a sweep's files, old words mapped onto the vocabulary (pending → queued, incomplete →
    failed); ValueError for a word outside it."""
    if not isinstance(word, str):  # a crafted file: a list or a number is not a word (and a list is unhashable)
        raise ValueError(f"unknown status {word!r:.40}")
    word = OLD_STATUS.get(word, word)
    if word not in STATUSES:
        raise ValueError(f"unknown status {word!r}")
    return cast(Status, word)


def sweep_status(variants: Iterable[VariantResult], *, stopped: bool) -> Status:
    """How a sweep ended: ``done`` when every variant finished (done or diverged), else ``cancelled`` when it was
    stopped (Ctrl-C, a stop token), else ``failed`` (a variant failed, an error ended the sweep, or its executor
    returned with variants left). While it runs it is ``running``."""
    if all(v.finished for v in variants):
        return "done"
    return "cancelled" if stopped else "failed"


@dataclass(frozen=True)
class SweepStep:
    """One step of one variant, as a sweep's ``callback`` sees it (``step.image()`` renders its current picture)."""

    variant: str
    batch: int  # the batch's number in the sweep's plan
    step: Step


@dataclass
class VariantResult:
    """One variant of a sweep. ``elapsed`` and ``peak_memory`` are its batch's: batch-mates ran at the same time."""

    name: str
    config: StyleConfig
    changes: dict[str, Any]  # the settings that differ from the base (``to_dict`` values)
    key: str  # hash of the full config and the input images: a rerun skips a finished variant with this key
    slug: str  # its files' name under runs/
    note: str = ""
    status: Status = "queued"  # queued | running | done | cancelled | diverged | failed (impasto.api.STATUSES)
    steps_done: int = 0
    total_steps: int = 0
    elapsed: float = 0.0  # seconds of optimisation, over every session that worked on it
    batch_size: int = 0  # how many variants its (last) batch held
    peak_memory: int | None = None  # bytes: GPU memory allocated, or the process's resident memory on a CPU
    memory_kind: str = ""
    message: str = ""
    skipped: bool = False  # finished by an earlier run of the same sweep
    history: list[dict[str, float]] = field(default_factory=list, repr=False)
    image: Image.Image | None = field(default=None, repr=False)
    path: Path | None = None

    @property
    def losses(self) -> dict[str, float]:
        """The last step's loss terms (unweighted content/style/tv, and the weighted total)."""
        return {k: v for k, v in self.history[-1].items() if k not in ("step", "scale", "time")} if self.history else {}

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def _repr_png_(self) -> bytes | None:
        if self.image is None:
            return None
        buf = io.BytesIO()
        self.image.save(buf, "PNG")
        return buf.getvalue()


@dataclass
class SweepResult:
    """A sweep's variants and its files (``files``: sheet, plots, report). In a notebook it displays as its sheet."""

    experiment: Experiment
    output: Path
    variants: list[VariantResult]
    content: LoadedImage = field(repr=False)
    styles: list[LoadedImage] = field(repr=False)
    overrides: dict[str, Any] = field(default_factory=dict)  # settings applied to every variant (--size, --steps, --fast-forward)
    status: Status = "running"  # then done | cancelled | failed: see ``sweep_status``
    elapsed: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)
    # What the report keeps between redraws (findings.py: the meter and each picture's measures), by key.
    cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, name: str) -> VariantResult:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"no variant {name!r}; variants: {', '.join(v.name for v in self.variants)}")

    @property
    def ran(self) -> list[str]:
        """The variants this call optimised (the others were finished before it)."""
        return [v.name for v in self.variants if not v.skipped and v.status != "queued"]

    def _repr_png_(self) -> bytes | None:
        sheet = self.files.get("sheet")
        return sheet.read_bytes() if sheet is not None and sheet.is_file() else None
