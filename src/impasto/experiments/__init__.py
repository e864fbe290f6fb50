"""Experiments: an experiment file (a base config, named variants, grid axes) → runs → sheet, plots, report.

``impasto.sweep("study.toml", content=..., styles=[...])`` or ``impasto sweep study.toml --content ... --style ...``.
"""

from __future__ import annotations

from .executors import Batch, BatchOutcome, Executor, LocalExecutor
from .results import SweepResult, SweepStep, VariantResult
from .runner import sweep
from .spec import Experiment, Variant, load_experiment, parse_experiment

__all__ = [
    "Batch", "BatchOutcome", "Executor", "Experiment", "LocalExecutor", "SweepResult", "SweepStep", "Variant",
    "VariantResult", "load_experiment", "parse_experiment", "sweep",
]
