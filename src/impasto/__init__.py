"""impasto: neural style transfer (Gatys, Ecker & Bethge 2016) on VGG19, from Python, the CLI and a web UI."""

from __future__ import annotations

__version__ = "0.1.0"

from .api import Result, stylize, stylize_batch  # noqa: E402
from .config import PRESETS, StyleConfig, preset  # noqa: E402
from .core.events import Step, StopToken  # noqa: E402
from .errors import (  # noqa: E402
    Cancelled, ConfigError, DivergedError, ImageError, ImpastoError, OutputError, ResourceError, WeightsError,
)
from .experiments import SweepResult, sweep  # noqa: E402

__all__ = sorted([
    "PRESETS", "Cancelled", "ConfigError", "DivergedError", "ImageError", "ImpastoError", "OutputError",
    "ResourceError", "Result", "Step", "StopToken", "StyleConfig", "SweepResult", "WeightsError", "__version__",
    "preset", "stylize", "stylize_batch", "sweep",
])
