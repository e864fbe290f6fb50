"""StyleConfig's range and combination checks (config.py checks the choices first, then calls ``check_ranges``)."""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any

from .bounds import MAX_SCALES, MAX_STEPS
from .coercion import invalid
from .errors import ConfigError
from .presets import PRESETS

if TYPE_CHECKING:
    from .config import StyleConfig


def check_ranges(c: StyleConfig) -> None:
    """Ranges, then combinations; each failure is one ConfigError naming the field and the fix."""
    _check_sizes(c)
    _check_schedule(c)
    _check_weights(c)
    _check_layers(c)
    _check_options(c)
    _check_masks(c)
    _check_output(c)


def suggest(word: object, choices: Any) -> str:
    """' (did you mean X?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_sizes(c: StyleConfig) -> None:
    for key in ("size", "steps", "max_pixels"):
        if getattr(c, key) <= 0:
            raise invalid(key, getattr(c, key), "must be > 0")
    if c.size < 16 or c.size > 16384:
        raise invalid("size", c.size, "must be between 16 and 16384 pixels")
    if c.shape is not None and (len(c.shape) != 2 or min(c.shape) < 16 or max(c.shape) > 16384):
        raise invalid("shape", c.shape, "give (height, width), each between 16 and 16384")
    if c.start_size is not None and c.start_size < 16:
        raise invalid("start_size", c.start_size, "must be >= 16, or none for a single scale")


def _check_schedule(c: StyleConfig) -> None:
    if c.first_steps is not None and c.first_steps <= 0:
        raise invalid("first_steps", c.first_steps, "must be > 0, or none for 2 x steps")
    for key in ("steps", "first_steps"):
        if (getattr(c, key) or 0) > MAX_STEPS:
            raise invalid(key, getattr(c, key), f"must be at most {MAX_STEPS:,} a scale")
    if c.scale_steps is not None and (len(c.scale_steps) > MAX_SCALES or max(c.scale_steps, default=0) > MAX_STEPS):
        raise invalid("scale_steps", c.scale_steps, f"give at most {MAX_SCALES} entries of at most {MAX_STEPS:,}")
    if not 0 <= c.seed < 2**63:
        raise invalid("seed", c.seed, "must be a whole number from 0 to 2**63 - 1")
    if c.tile_size and (c.tile_size < 64 or c.tile_size % 16 or c.tile_size > 16384):
        raise invalid("tile_size", c.tile_size, "must be 0 (no tiles) or a multiple of 16 of at least 64, e.g. 1024")
    if c.scale_steps is not None and (not c.scale_steps or min(c.scale_steps) <= 0):
        raise invalid("scale_steps", c.scale_steps, "give positive whole numbers, e.g. 200,100,50, or none")
    if c.save_every < 0:
        raise invalid("save_every", c.save_every, "must be >= 0 (0 = never)")
    if not (math.isfinite(c.scale_factor) and 1.05 <= c.scale_factor <= 4):
        raise invalid("scale_factor", c.scale_factor, "must be between 1.05 and 4")


def _check_weights(c: StyleConfig) -> None:
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise invalid("lr", c.lr, "must be a finite number > 0")
    if not (math.isfinite(c.adam_beta2) and 0 <= c.adam_beta2 < 1):
        raise invalid("adam_beta2", c.adam_beta2, "must be >= 0 and < 1 (0.99, or 0.999 as PyTorch's default)")
    for key in ("content_weight", "style_weight", "tv_weight", "temporal_weight"):
        v = getattr(c, key)
        if not (math.isfinite(v) and v >= 0):
            raise invalid(key, v, "must be a finite number >= 0")
    if not (math.isfinite(c.style_scale) and 0.05 <= c.style_scale <= 8):
        raise invalid("style_scale", c.style_scale, "must be between 0.05 and 8")
    if not (math.isfinite(c.strength) and 0 <= c.strength <= 1):
        raise invalid("strength", c.strength, "must be between 0 (the photo) and 1 (the painting), e.g. 0.6")


def _check_layers(c: StyleConfig) -> None:
    if not c.content_layers and c.content_weight > 0:
        raise invalid("content_layers", c.content_layers, "give at least one layer (or set content_weight = 0)")
    if len(set(c.content_layers)) != len(c.content_layers):
        raise invalid("content_layers", ",".join(c.content_layers), "each layer at most once")
    if not c.style_layers:
        raise invalid("style_layers", c.style_layers, "give at least one layer")
    names = [n for n, _ in c.style_layers]
    if len(set(names)) != len(names):
        raise invalid("style_layers", ",".join(names), "each layer at most once")
    ws = [w for _, w in c.style_layers]
    if any(not math.isfinite(w) or w < 0 for w in ws) or sum(ws) <= 0:
        raise invalid("style_layers", dict(c.style_layers), "layer weights must be finite, >= 0 and not all 0")
    if c.style_blend is not None:
        b = c.style_blend
        if any(not math.isfinite(w) or w < 0 for w in b) or sum(b) <= 0:
            raise invalid("style_blend", ",".join(map(str, b)), "weights must be finite, >= 0 and not all 0")


def _check_options(c: StyleConfig) -> None:
    if c.ema is not None and not (0 < c.ema < 1):
        raise invalid("ema", c.ema, "must be between 0 and 1 (0.99 is good), or none")
    if c.tol is not None and not (0 < c.tol < 1):
        raise invalid("tol", c.tol, "must be between 0 and 1 (1e-3 is good), or none")
    if not c.init:
        raise invalid("init", c.init, "use content, noise, gaussian or the path of an image")
    if c.preset is not None and c.preset not in PRESETS:
        raise invalid("preset", c.preset, f"choose one of {', '.join(PRESETS)}{suggest(c.preset, PRESETS)}")
    if not (math.isfinite(c.neighbour_mix) and 0 <= c.neighbour_mix <= 1):
        raise invalid("neighbour_mix", c.neighbour_mix, "must be between 0 (the result alone) and 1 (the photo alone)")
    if not (math.isfinite(c.neighbour_rarity) and 0 <= c.neighbour_rarity <= 4):
        raise invalid("neighbour_rarity", c.neighbour_rarity, "must be between 0 (plain nearest neighbours) and 4")
    if c.neighbour_refresh < 0:
        raise invalid("neighbour_refresh", c.neighbour_refresh, "must be >= 0 (0: once a scale)")
    why = {"neighbour": "the neighbour loss is a cosine distance, the same under every convention",  # the recipe
           "wasserstein": "W2 is always normalised like the relative Gram loss"}.get(c.style_loss)  # records loss_norm
    if why and c.loss_norm != "relative":
        raise ConfigError(f"style_loss = {c.style_loss!r} is invalid with loss_norm = {c.loss_norm!r}: {why}; set "
                          "loss_norm = 'relative' or style_loss = 'gram'", key="style_loss")


def _check_masks(c: StyleConfig) -> None:  # masks.py checks what needs the images (counts, empty regions)
    if c.masks is not None and c.mask_colors is not None:
        raise ConfigError("masks and mask_colors are both set: give one mask per style image or one colour-coded "
                          "image, not both", key="mask_colors")
    if c.masks is not None and "none" in c.masks:
        raise invalid("masks", ",".join(c.masks), "every style image needs its mask (or leave that style out)")
    if not (math.isfinite(c.mask_feather) and 0 <= c.mask_feather <= 0.25):
        raise invalid("mask_feather", c.mask_feather, "must be between 0 (hard edges) and 0.25 (0.01 is good)")


def _check_output(c: StyleConfig) -> None:
    from .outputs import parse_colour, parse_print

    if c.print_size is not None:
        parse_print(c.print_size)
    if c.bit_depth not in (8, 16):
        raise invalid("bit_depth", c.bit_depth, "choose 8 or 16 (16 for .png and .tif)")
    if c.background is not None:
        parse_colour(c.background)
