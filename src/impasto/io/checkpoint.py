"""Checkpoints: the engine's RunState plus the config and inputs' fingerprint, written atomically.

Read back with ``weights_only=True`` (tensors, numbers, strings, lists and dicts only: a checkpoint cannot run code)
and then checked as if a stranger wrote it: every field of the RunState must have the type and shape the engine
writes (``load_checkpoint``), and its position must lie inside the schedule of the run it claims to continue
(``check_position``: ``step=10**9`` is not "done", it is not a checkpoint of this run). A damaged or foreign file
is a one-line error, never a traceback or a run that silently does something else.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .files import atomic_write, path_problem

FORMAT = 1
REQUIRED_STATE = {"images", "step", "scale", "scale_step", "history"}
STATE_FIELDS = {"images", "step", "scale", "scale_step", "params", "opt_state", "ema", "ema_count", "history",
                "status", "message", "elapsed", "diverged", "rescale_pending"}  # core.state.RunState's


def save_checkpoint(path: str | Path, state_dict: dict[str, Any], config: dict[str, Any], fingerprint: str) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "state": state_dict, "config": config, "fingerprint": fingerprint}, buf)
    atomic_write(path, buf.getvalue(), what="the checkpoint")  # a full disk: a WriteError naming it
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    problem = path_problem(p)
    if problem == "no such file":
        raise ConfigError(f"--resume: no checkpoint at {p}; run without --resume to start afresh")
    if problem:
        raise ConfigError(f"{p}: {problem}; a checkpoint is a file that impasto wrote")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # any damage to the file means the same to the user
        raise ConfigError(f"{p}: not a readable impasto checkpoint ({type(e).__name__}); delete it and start afresh") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{p}: not an impasto checkpoint of this version; delete it and start afresh")
    state = data.get("state")
    if not (isinstance(state, dict) and REQUIRED_STATE <= set(state) and isinstance(data.get("config"), dict)
            and isinstance(data.get("fingerprint"), str) and state["images"]):
        raise ConfigError(f"{p}: an incomplete impasto checkpoint; delete it and start afresh")
    why = state_problem(state)
    if why:
        raise ConfigError(f"{p}: not a checkpoint impasto wrote ({why}); delete it and start afresh")
    return data


# -- checks -----------------------------------------------------------------------------------------------------------
def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _images(v: Any, n: int | None = None) -> bool:
    """A list of (1, C, H, W) finite floating-point tensors (of ``n`` items)."""
    return (isinstance(v, list) and (n is None or len(v) == n)
            and all(isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[0] == 1 and min(t.shape) > 0
                    and t.is_floating_point() and bool(torch.isfinite(t).all()) for t in v))


def _row(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, (int, float)) and not isinstance(x, bool)
                                       for k, x in v.items())


def _shown(v: Any) -> str:
    return f"{v!r:.40}" if isinstance(v, (int, float, str)) else f"a {type(v).__name__}"


def state_problem(st: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's RunState fields (types and shapes), or None."""
    unknown = set(st) - STATE_FIELDS
    if unknown:
        return f"unknown fields {sorted(map(str, unknown))[:3]}"
    for name in ("step", "scale", "scale_step", "ema_count"):
        if name in st and not _count(st[name]):
            return f"{name} is {_shown(st[name])}, not a count of steps"
    if not _images(st["images"]) or any(t.shape[1] != 3 for t in st["images"]):
        return "its images are not (1, 3, H, W) tensors of finite values"
    n, shape = len(st["images"]), st["images"][0].shape
    if any(t.shape != shape for t in st["images"]):
        return "its images differ in size"
    for name in ("params", "ema"):
        if st.get(name) is not None and (not _images(st[name], n) or any(t.shape[-2:] != shape[-2:] for t in st[name])):
            return f"its {name} are not one tensor of the images' size per image"
    if not (isinstance(st["history"], list) and len(st["history"]) == n
            and all(isinstance(h, list) and all(_row(r) for r in h) for h in st["history"])):
        return "its history is not one list of loss rows per image"
    checks = {"status": lambda v: isinstance(v, str), "message": lambda v: isinstance(v, str),
              "elapsed": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
              "rescale_pending": lambda v: isinstance(v, bool),
              "diverged": lambda v: isinstance(v, dict) and all(_count(k) and k < n and isinstance(m, str)
                                                                for k, m in v.items())}
    for name, ok in checks.items():
        if name in st and not ok(st[name]):
            return f"{name} is {_shown(st[name])}"
    return _opt_problem(st.get("opt_state"), n)


def _opt_problem(opt: Any, n: int) -> str | None:
    """Adam's state_dict as core.optimize saves it: one parameter group (of one tensor) per image."""
    if opt is None:
        return None
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    states = opt.get("state") if isinstance(opt, dict) else None
    if not (isinstance(groups, list) and len(groups) == n and isinstance(states, dict)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) and len(g["params"]) == 1
                    and _count(g["params"][0]) for g in groups)):
        return "its optimiser state is not one parameter group per image"
    ids = {g["params"][0] for g in groups}
    for key, s in states.items():
        if key not in ids or not isinstance(s, dict):
            return "its optimiser state names parameters it does not have"
        for name, v in s.items():
            ok = (_images([v]) and v.shape[1] == 3) if name in ("exp_avg", "exp_avg_sq") else \
                isinstance(v, (int, float, torch.Tensor)) and not isinstance(v, bool) and \
                (not isinstance(v, torch.Tensor) or v.numel() == 1)
            if not ok:
                return f"its optimiser state's {name!r} is {_shown(v)}"
    return None


def check_position(path: str | Path, st: dict[str, Any], sizes: Sequence[tuple[int, int]], steps: Sequence[int],
                   *, runs: int = 1, adam: bool = True) -> None:
    """Refuse a checkpoint whose position does not lie inside this run's schedule (every scale's (h, w) and its
    steps): a step past the end, a scale that does not exist, images of another scale's size."""
    def refuse(why: str) -> None:
        raise ConfigError(f"{path}: does not fit this run ({why}); delete it and start afresh")

    n, scale = len(st["images"]), st["scale"]
    if n != runs:
        refuse(f"it holds {n} images for {runs} run(s)")
    if scale >= len(sizes):
        refuse(f"scale {scale + 1} of a schedule of {len(sizes)}")
    if st["scale_step"] > steps[scale] or st["step"] > sum(steps[:scale]) + st["scale_step"] \
            or st["step"] < st["scale_step"]:
        refuse(f"step {st['step']} ({st['scale_step']} of scale {scale + 1}) is not a step of its "
               f"{sum(steps)}-step schedule")
    if tuple(st["images"][0].shape[-2:]) != tuple(sizes[scale]):
        h, w = st["images"][0].shape[-2:]
        refuse(f"its images are {w}x{h}, scale {scale + 1} is {sizes[scale][1]}x{sizes[scale][0]}")
    if st.get("opt_state") is not None and not adam:
        refuse("it holds Adam's state for an L-BFGS run")
