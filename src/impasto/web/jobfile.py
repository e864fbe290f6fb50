"""A job's ``job.json`` read back when the server starts, as if a stranger wrote it.

The results folder outlives the server and anyone who can write to it can leave a file there, so every field is
checked for the type the queue writes before a ``Job`` is made of it: a wrong one (``"created": "yesterday"``, a
history of numbers, a list of styles that is a string) would otherwise break the gallery or the event streams of
every later request, far from the file that caused it. A file that fails is skipped, with a one-line warning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..io.files import path_problem

MAX_JOB_BYTES = 64 * 2**20  # a job.json holds its loss history: ~150 bytes a step


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _losses(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _number(x) for k, x in v.items())


# field → (check, what it must be); absent optional fields take the queue's defaults.
_FIELDS = {
    "status": (lambda v: isinstance(v, str), "a status word"),
    "message": (lambda v: isinstance(v, str), "text"),
    "created": (_number, "a time"),
    "started": (lambda v: v is None or _number(v), "a time or null"),
    "finished": (lambda v: v is None or _number(v), "a time or null"),
    "step": (_count, "a step count"),
    "total_steps": (lambda v: v is None or _count(v), "a step count or null"),
    "losses": (_losses, "an object of numbers"),
    "config": (lambda v: isinstance(v, dict), "an object"),
    "inputs": (lambda v: isinstance(v, dict) and isinstance(v.get("content"), str)
               and isinstance(v.get("styles"), list) and bool(v["styles"])
               and all(isinstance(s, str) for s in v["styles"]), "{content: text, styles: [text, ...]}"),
    "has_result": (lambda v: isinstance(v, bool), "true or false"),
    "history": (lambda v: isinstance(v, list) and all(_losses(e) for e in v), "a list of objects of numbers"),
}
REQUIRED = ("status", "created", "config", "inputs")


def read_job_file(path: Path) -> dict[str, Any]:
    """The checked contents of a job.json; ValueError (one line) naming what is wrong."""
    problem = path_problem(path)
    if problem:
        raise ValueError(problem)
    if path.stat().st_size > MAX_JOB_BYTES:
        raise ValueError(f"over {MAX_JOB_BYTES // 2**20} MB")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ValueError(f"no {missing[0]!r}")
    for key, (check, what) in _FIELDS.items():
        if key in data and not check(data[key]):
            raise ValueError(f"{key!r} is not {what}")
    return data
