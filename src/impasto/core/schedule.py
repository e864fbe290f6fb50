"""Coarse-to-fine schedule (Gatys et al. 2017; crowsonkb): pure functions of sizes."""

from __future__ import annotations

import math


def fit_long_side(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the same aspect ratio and the given long side (each at least 1)."""
    s = long_side / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def scale_sizes(final: tuple[int, int], start: int | None, factor: float = math.sqrt(2)) -> list[tuple[int, int]]:
    """(h, w) of every scale: long side ``start``, × ``factor`` each time, ending exactly at ``final``.

    A scale within 20% of the final size is merged into it (a step too small to be worth a separate scale).
    """
    h, w = final
    long_final = max(h, w)
    if start is None or start >= long_final:
        return [final]
    longs: list[int] = []
    long = float(start)
    while long * 1.2 < long_final:
        longs.append(round(long))
        long *= factor
    sizes = [fit_long_side(h, w, n) for n in longs]
    return [*sizes, final]


def steps_per_scale(n_scales: int, steps: int, first_steps: int | None,
                    scale_steps: tuple[int, ...] | None = None) -> list[int]:
    """Iterations per scale: ``steps`` at each scale, ``first_steps`` (default 2 × steps) at the first of several.

    The first scale starts from the content (or noise) and has the most to do; later scales refine an upsampled
    result (crowsonkb: 1000 then 500). ``scale_steps`` lists them explicitly, coarsest first, its last value
    repeating (print sizes: few iterations where they are expensive, as jcjohnson's multi-resolution recipe does).
    """
    if scale_steps:
        return [scale_steps[min(i, len(scale_steps) - 1)] for i in range(n_scales)]
    if n_scales == 1:
        return [steps]
    return [first_steps or 2 * steps] + [steps] * (n_scales - 1)
