"""Experiments: an experiment file (a base config, named variants, grid axes) → runs → sheet, plots, report.

``impasto.sweep("study.toml", content=..., styles=[...])`` or ``impasto sweep study.toml --content ... --style ...``.
The names below load on first use (PEP 562), so that ``impasto.experiments.cli`` (the command's parser) imports
nothing heavy: the ``impasto`` command's ``--help`` and usage errors never import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Batch": "executors", "BatchOutcome": "executors", "Executor": "executors", "LocalExecutor": "executors",
    "SweepResult": "results", "SweepStep": "results", "VariantResult": "results", "sweep": "runner",
    "Experiment": "spec", "Variant": "spec", "load_experiment": "spec", "parse_experiment": "spec",
    "BatchJob": "batch_job", "Pair": "batch_job", "batch": "batch_job", "RayExecutor": "ray_executor",
}

__all__ = [
    "Batch", "BatchJob", "BatchOutcome", "Executor", "Experiment", "LocalExecutor", "Pair", "RayExecutor",
    "SweepResult", "SweepStep", "Variant", "VariantResult", "batch", "load_experiment", "parse_experiment", "sweep",
]

if TYPE_CHECKING:
    from .batch_job import BatchJob, Pair, batch
    from .executors import Batch, BatchOutcome, Executor, LocalExecutor
    from .ray_executor import RayExecutor
    from .results import SweepResult, SweepStep, VariantResult
    from .runner import sweep
    from .spec import Experiment, Variant, load_experiment, parse_experiment


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
