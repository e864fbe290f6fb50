"""A sweep's folder on disk: what a rerun reads to skip finished variants and to continue interrupted ones.

```
OUT/
  sweep.json               the manifest: experiment, inputs, every variant's key, status, losses, time, memory
  runs/NAME.png            the result, its recipe (config, losses, sweep and variant) in the PNG
  runs/NAME.losses.csv     its loss history, one row per step
  runs/NAME.json           its record (key, status, time, memory); written last, so it vouches for the two above
  runs/NAME.ckpt           an interrupted variant's optimiser state (deleted when it finishes)
  sheet.png, plots/, report.md, report.html
```
Every file is written atomically (a temporary file renamed into place), so an interrupted sweep never leaves a
half-written file that a rerun would trust.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from ..api import Result, RunState
from ..config import StyleConfig
from ..errors import OutputError
from ..io.checkpoint import save_checkpoint
from ..io.files import atomic_write, clean_stale_temps, os_reason, path_problem
from ..io.images import load_image
from .results import VariantResult, read_status

FORMAT = 1
MAX_RECORD_BYTES = 2**20  # a record is a few KB: anything larger was not written by a sweep
MAX_HISTORY_BYTES = 256 * 2**20
# The fields a rerun takes from a record, and their types (anything else: the record is not trusted).
RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "steps_done": (int,), "total_steps": (int,), "elapsed": (int, float), "batch_size": (int,),
    "peak_memory": (int, type(None)), "memory_kind": (str,), "message": (str,), "final_losses": (dict,),
    "changes": (dict,), "config": (dict,),
}


def run_key(config: StyleConfig, inputs_fingerprint: str) -> str:
    """A variant's identity: every setting that changes the picture (not the device) and the input images."""
    return hashlib.sha256(f"{config.key()}:{inputs_fingerprint}".encode()).hexdigest()[:16]


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


class RunFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = root / "runs"

    def create(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise OutputError(f"{self.root}: is a file; give -o a folder for the sweep's results")
        try:
            (self.root / "plots").mkdir(parents=True, exist_ok=True)
            self.runs.mkdir(exist_ok=True)
        except OSError as e:
            raise OutputError(f"{self.root}: cannot create the sweep's folder ({os_reason(e)})") from None

    def clean(self) -> None:
        """Remove the temporary files that a killed sweep (SIGKILL, a power cut) left in the folder."""
        for folder in (self.root, self.runs, self.root / "plots"):
            clean_stale_temps(folder)

    def image(self, slug: str) -> Path:
        return self.runs / f"{slug}.png"

    def history(self, slug: str) -> Path:
        return self.runs / f"{slug}.losses.csv"  # where Result.save puts it

    def record(self, slug: str) -> Path:
        return self.runs / f"{slug}.json"

    def checkpoint(self, slug: str) -> Path:
        return self.runs / f"{slug}.ckpt"

    # -- reading --------------------------------------------------------------------------------------------------
    def read_record(self, slug: str) -> dict[str, Any] | None:
        """A variant's record, or None when it is missing or not one a sweep wrote (the variant then runs afresh):
        read as if a stranger wrote it, every field of the type the sweep writes."""
        path = self.record(slug)
        try:
            if path_problem(path) or path.stat().st_size > MAX_RECORD_BYTES:
                return None
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                return None
            data["status"] = read_status(data.get("status"))  # older sweeps' words → today's
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data.get("key"), str):
            return None
        for name, types in RECORD_TYPES.items():
            if name in data and (not isinstance(data[name], types) or isinstance(data[name], bool)):
                return None
        return data

    def restore(self, rec: VariantResult, saved: dict[str, Any]) -> bool:
        """Fill ``rec`` from a finished variant's files; False when they are missing or unreadable."""
        try:
            rec.image = load_image(self.image(rec.slug), max_pixels=rec.config.max_pixels).image
            rec.history = read_history(self.history(rec.slug))
        except (OSError, ValueError, csv.Error):  # ImageError is a ValueError
            return False
        for name in ("status", "steps_done", "total_steps", "elapsed", "batch_size", "peak_memory", "memory_kind",
                     "message"):
            if name in saved:
                setattr(rec, name, saved[name])
        rec.path = self.image(rec.slug)
        return True

    # -- writing --------------------------------------------------------------------------------------------------
    def save_result(self, rec: VariantResult, result: Result, sweep_info: dict[str, Any]) -> None:
        """The picture (recipe inside, with the sweep's name for it), its loss history, then its record."""
        recipe = {**result.recipe, "sweep": {**sweep_info, "variant": rec.name, "key": rec.key,
                                             "changes": rec.changes}}
        dataclasses.replace(result, recipe=recipe).save(self.image(rec.slug), force=True)
        rec.path = self.image(rec.slug)
        self.save_record(rec)

    def save_record(self, rec: VariantResult) -> None:
        write_json(self.record(rec.slug), {
            "format": FORMAT, "name": rec.name, "key": rec.key, "status": rec.status, "steps_done": rec.steps_done,
            "total_steps": rec.total_steps, "elapsed": round(rec.elapsed, 3), "batch_size": rec.batch_size,
            "peak_memory": rec.peak_memory, "memory_kind": rec.memory_kind, "message": rec.message,
            "final_losses": rec.losses, "changes": rec.changes, "config": rec.config.to_dict(),
        })

    def save_checkpoint(self, rec: VariantResult, state: RunState, fingerprint: str) -> None:
        save_checkpoint(self.checkpoint(rec.slug), state.to_dict(), rec.config.to_dict(), fingerprint)

    def clear(self, slug: str) -> None:
        """Forget a variant (stale or forced): its record first, so that no half-cleared state is trusted."""
        for path in (self.record(slug), self.checkpoint(slug), self.image(slug), self.history(slug)):
            path.unlink(missing_ok=True)


def read_history(path: Path) -> list[dict[str, float]]:
    """A loss history written by ``write_history``; ValueError or csv.Error when it is not one."""
    if path_problem(path) or path.stat().st_size > MAX_HISTORY_BYTES:
        raise ValueError(f"{path}: not a loss history")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for row in rows:
        entry: dict[str, float] = {}
        for k, v in row.items():
            if k and v not in (None, ""):
                entry[k] = int(v) if k in ("step", "scale") else float(v)
        out.append(entry)
    return out
