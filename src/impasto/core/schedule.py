"""Coarse-to-fine schedule (Gatys et al. 2017; crowsonkb): pure functions of sizes."""

from __future__ import annotations

import math


def fit_long_side(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the same aspect ratio and the given long side (each at least 1)."""
    s = long_side / max(height, width)
    return max(1, round(height * s)), max(1, round(width * s))


def fit_side(height: int, width: int, pixels: int, side: str = "long") -> tuple[int, int]:
    """(h, w) with the same aspect ratio and ``pixels`` on the ``side`` side ("long" or "short").

    The short side is set as torchvision's ``Resize(int)`` sets it (the classic exercise resized so): the long side
    is ``int(pixels * long / short)``, truncated, not rounded."""
    if side == "long":
        return fit_long_side(height, width, pixels)
    if width <= height:
        return max(1, int(pixels * height / width)), pixels
    return pixels, max(1, int(pixels * width / height))


def scale_sizes(final: tuple[int, int], start: int | None, factor: float = math.sqrt(2),
                side: str = "long") -> list[tuple[int, int]]:
    """(h, w) of every scale: ``start`` on the ``side`` side ("long" or "short", the side ``size`` sets), × ``factor``
    each time, ending exactly at ``final``.

    A scale within 20% of the final size is merged into it (a step too small to be worth a separate scale).
    """
    h, w = final
    side_final = max(h, w) if side == "long" else min(h, w)
    if start is None or start >= side_final:
        return [final]
    sides: list[int] = []
    n = float(start)
    while n * 1.2 < side_final:
        sides.append(round(n))
        n *= factor
    return [*(fit_side(h, w, s, side) for s in sides), final]


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
