"""What the engine reads of a run's configuration, as a typed protocol.

``impasto.StyleConfig`` (validated, documented, above core) satisfies it; core never imports it, and never reads a
setting that is not listed here.
"""

from __future__ import annotations

from typing import Protocol


class RunSettings(Protocol):
    # schedule
    size_side: str  # "long" | "short": the side start_size sets (and size did, above core)
    start_size: int | None
    scale_factor: float
    steps: int
    first_steps: int | None
    scale_steps: tuple[int, ...] | None
    # optimiser
    optimizer: str  # "adam" | "lbfgs"
    lr: float
    adam_beta2: float  # Adam's β₂, per run (each run is its own parameter group)
    param: str  # "rgb" | "normalized"
    ema: float | None
    tol: float | None
    seed: int
    init: str  # "content" | "noise" | "gaussian" | a path (the api loads it)
    # objective
    content_weight: float
    style_weight: float
    tv_weight: float
    temporal_weight: float  # video: the temporal term's (core/terms.TemporalTerm)
    content_layers: tuple[str, ...]
    style_layers: tuple[tuple[str, float], ...]
    style_blend: tuple[float, ...] | None
    style_scale: float
    style_fit: str  # "keep" | "stretch"
    loss_norm: str  # "relative" | "classic" | "jcjohnson"
    style_loss: str  # "gram" | "wasserstein" | "neighbour"
    neighbour_mix: float  # neighbour: the photo's share of the query that neighbours are searched with
    neighbour_refresh: int  # neighbour: steps between searches at the last scale (0: once a scale)
    neighbour_rotations: bool  # neighbour: search the style images' 90°, 180° and 270° rotations too
    # arithmetic and memory
    precision: str
    tile_size: int
    checkpoint: bool



# What every run of one batch must share for the engine (one schedule, one optimiser, one loss convention, one
# arithmetic); weights, layers, blends, learning rates, Adam's β₂, seeds, inits and EMA may differ per run.
ENGINE_SHARED = ("size_side", "start_size", "scale_factor", "steps", "first_steps", "scale_steps", "optimizer", "param",
                 "tol", "loss_norm", "style_loss", "neighbour_refresh", "neighbour_rotations", "style_scale",
                 "style_fit", "precision", "tile_size", "checkpoint")
