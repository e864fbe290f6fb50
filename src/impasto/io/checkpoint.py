"""Checkpoints: the engine's RunState plus the config and inputs' fingerprint, written atomically.

Read back with ``weights_only=True`` (tensors, numbers, strings, lists and dicts only: a checkpoint cannot run code),
and checked for the keys that resuming needs, so a damaged or foreign file is a one-line error, not a traceback.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, OutputError
from .files import atomic_write

FORMAT = 1
REQUIRED_STATE = {"images", "step", "scale", "scale_step", "history"}


def save_checkpoint(path: str | Path, state_dict: dict[str, Any], config: dict[str, Any], fingerprint: str) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "state": state_dict, "config": config, "fingerprint": fingerprint}, buf)
    try:
        atomic_write(path, buf.getvalue())
    except OSError as e:
        raise OutputError(f"{path}: cannot write the checkpoint ({e.strerror or type(e).__name__})") from None
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--resume: no checkpoint at {p}; run without --resume to start afresh")
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
    return data
