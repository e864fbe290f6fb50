"""impasto: neural style transfer (Gatys, Ecker & Bethge 2016) on VGG19, from Python, the CLI and a web UI.

The public names are loaded on first use (PEP 562): ``import impasto`` and the ``impasto`` command's ``--help`` and
usage errors do not import torch; ``impasto.stylize`` or ``from impasto import stylize`` does.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name → the module that defines it.
_EXPORTS = {
    "Result": "api", "Step": "api", "StopToken": "api", "blend_file": "api", "blend_images": "api",
    "estimate_run": "api", "stylize": "api",
    "stylize_batch": "api",
    "PRESETS": "config", "StyleConfig": "config", "preset": "config",
    "Cancelled": "errors", "ConfigError": "errors", "DivergedError": "errors", "ImageError": "errors",
    "ImpastoError": "errors", "OutputError": "errors", "ResourceError": "errors", "WeightsError": "errors",
    "Distances": "meter", "Meter": "meter", "measure": "meter",
    "SweepResult": "experiments", "batch": "experiments", "sweep": "experiments",
    "stylize_video": "video",
}

__all__ = [
    "Cancelled",
    "ConfigError",
    "Distances",
    "DivergedError",
    "ImageError",
    "ImpastoError",
    "Meter",
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
    "batch",
    "blend_file",
    "blend_images",
    "estimate_run",
    "measure",
    "preset",
    "stylize",
    "stylize_batch",
    "stylize_video",
    "sweep",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these
    from .api import Result, Step, StopToken, blend_file, blend_images, estimate_run, stylize, stylize_batch
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
    from .experiments import SweepResult, batch, sweep
    from .meter import Distances, Meter, measure
    from .video import stylize_video


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (then cached here); or a submodule (``impasto.api``)."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value
    if name.isidentifier() and not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")  # impasto.api.x after a bare `import impasto`
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
