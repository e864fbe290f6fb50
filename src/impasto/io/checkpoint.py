"""Checkpoints: the engine's RunState plus the config and inputs' fingerprint, written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from .images import atomic_write

FORMAT = 1


def save_checkpoint(path: str | Path, state_dict: dict[str, Any], config: dict[str, Any], fingerprint: str) -> Path:
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "state": state_dict, "config": config, "fingerprint": fingerprint}, buf)
    atomic_write(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--resume: no checkpoint at {p}; run without --resume to start afresh")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(f"{p}: not a readable impasto checkpoint ({type(e).__name__}); delete it and start afresh") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{p}: not an impasto checkpoint of this version; delete it and start afresh")
    return data
