"""impasto: neural style transfer (Gatys, Ecker & Bethge 2016) on VGG19, from Python, the CLI and a web UI."""

from __future__ import annotations

__version__ = "0.1.0"

from .api import Result, Step, StopToken, stylize, stylize_batch
from .config import PRESETS, StyleConfig, preset
from .errors import (
    Cancelled,
    ConfigError,
    DivergedError,
    ImageError,
    ImpastoError,
    OutputError,
    ResourceError,
    WeightsError,
)
from .experiments import SweepResult, sweep

__all__ = [
    "Cancelled",
    "ConfigError",
    "DivergedError",
    "ImageError",
    "ImpastoError",
    "OutputError",
    "PRESETS",
    "ResourceError",
    "Result",
    "Step",
    "StopToken",
    "StyleConfig",
    "SweepResult",
    "WeightsError",
    "__version__",
    "preset",
    "stylize",
    "stylize_batch",
    "sweep",
]
