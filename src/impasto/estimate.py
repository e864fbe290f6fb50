"""What a run will take: the plan's arithmetic, counted scale by scale, times a machine's calibration (calibrate.py).

A step of a scale costs ``passes × overhead + flops / rate``: the fixed seconds of one pass through the network
(Python, autograd's bookkeeping, kernel launches: what makes a 128 px step cost more than its pixels say) and the
floating-point work, at the rate this machine ran VGG at. The work is counted from the architecture:

- VGG19's convolutions up to the deepest layer used, 2 × 9 × C_in × C_out FLOPs a position, forward and backward
  (the backward computes the input's gradient only: the weights are frozen, so it costs one more forward);
- the style statistics (a C × C Gram per style layer, forward and backward: 3 products of C × C × positions);
- with tiles, every tile with its halo, run twice a step (core/tiling.py: one pass without autograd, one with);
- once per scale, the targets (the photo's and the styles' features, forward only), and for the neighbour loss
  the search (a matrix product of the result's hypercolumns with the style's, at the matmul rate) each time it runs.

Pure: numbers in, numbers out; no clock, no cache, no printing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .core.layers import BLOCKS, CHANNELS, LAYER_INDEX, LAYER_NAMES

GRID = 4  # the neighbour term's hypercolumn stride (core/neighbours.GRID)
MAX_STYLE = 16384  # style locations it searches at most (core/neighbour_term.MAX_STYLE)
MINUTE = 60.0  # an estimate above this suggests a quicker way (``advice``)


def _convs() -> list[tuple[str, int, int, int]]:
    """(conv name, block, C_in, C_out) of VGG19's 16 convolutions."""
    out, c_in = [], 3
    for b, (n, ch) in enumerate(zip(BLOCKS, CHANNELS), start=1):
        for i in range(1, n + 1):
            out.append((f"conv{b}_{i}", b, c_in, ch))
            c_in = ch
    return out


CONVS = _convs()


def vgg_flops(height: int, width: int, deepest: str) -> float:
    """FLOPs of one forward pass of an image through VGG19 up to ``deepest`` (convolutions only)."""
    last = LAYER_INDEX[deepest]
    total = 0.0
    for name, block, c_in, c_out in CONVS:
        if LAYER_INDEX[name] > last:
            break
        h, w = height >> (block - 1), width >> (block - 1)  # each pooling halves (floor)
        total += 2.0 * 9 * c_in * c_out * h * w
    return total


def gram_flops(height: int, width: int, layers: Sequence[str]) -> float:
    """FLOPs of the style layers' Gram matrices, forward and backward (three C × C × positions products each)."""
    total = 0.0
    for name in layers:
        block = int(name[4])
        down = block - (0 if name.startswith("pool") else 1)
        total += 3 * 2.0 * CHANNELS[block - 1] ** 2 * (height >> down) * (width >> down)
    return total


def deepest(layers: Sequence[str]) -> str:
    return max(layers, key=LAYER_INDEX.__getitem__) if layers else LAYER_NAMES[0]


@dataclass(frozen=True)
class ScaleCost:
    """The work of one scale of a plan (every run of the batch together)."""

    size: tuple[int, int]  # (h, w)
    steps: int
    step_flops: float  # one step: VGG forward + backward, the style statistics
    passes: int  # passes through the network a step (tiles × 2 with tiles; 1 without): each pays the overhead
    setup_flops: float  # once at the scale's start: the targets' forward passes (and the first neighbour search's)
    searches: int = 0  # neighbour searches at this scale (the first included)
    search_flops: float = 0.0  # one search's matrix product (at the matmul rate)


@dataclass(frozen=True)
class Rates:
    """A machine's figures (a ``calibrate.Calibration`` has them): how fast it runs VGG and matrix products."""

    overhead_s: float  # seconds a pass through the network costs beyond its FLOPs
    vgg_flops_per_s: float
    matmul_flops_per_s: float
    startup_s: float = 0.0  # loading the network's weights, before the first scale


@dataclass(frozen=True)
class Estimate:
    """What a plan will take on a machine: the seconds of each scale's steps, and in all."""

    step_seconds: tuple[float, ...]  # one step of each scale
    steps: tuple[int, ...]
    setup_seconds: tuple[float, ...]  # each scale's targets (and neighbour searches)
    startup_seconds: float

    @property
    def seconds(self) -> float:
        return self.startup_seconds + sum(n * s + u for n, s, u in
                                          zip(self.steps, self.step_seconds, self.setup_seconds))


def plan_cost(sizes: Sequence[tuple[int, int]], steps: Sequence[int], *, layers: Sequence[str],
              style_layers: Sequence[str], style_sizes: Sequence[Sequence[tuple[int, int]]], runs: int = 1,
              tile: int = 0, halo: int = 96, style_loss: str = "gram", refresh: int = 0,
              rotations: bool = False) -> list[ScaleCost]:
    """Every scale's work. ``layers``: all the layers the objective reads (content and style); ``style_sizes[i]``:
    the style images' (h, w) at scale i; ``runs``: the batch's size; ``tile``/``halo``: core/tiling's."""
    last = deepest(layers)
    grams = style_layers if style_loss != "neighbour" else ()
    out = []
    for i, ((h, w), n) in enumerate(zip(sizes, steps)):
        if tile and max(h, w) > tile:
            boxes = _tile_boxes(h, w, tile, halo)
            step = sum(3 * vgg_flops(bh, bw, last) for bh, bw in boxes)  # no-grad forward + forward/backward
            passes = 2 * len(boxes)
        else:
            step, passes = 2 * vgg_flops(h, w, last), 1
        step = (step + gram_flops(h, w, grams)) * runs
        setup = vgg_flops(h, w, last) + sum(vgg_flops(sh, sw, deepest(style_layers)) for sh, sw in style_sizes[i])
        searches, search = 0, 0.0
        if style_loss == "neighbour":
            final = i == len(sizes) - 1
            searches = 1 + ((n - 1) // refresh if final and refresh else 0)
            dims = sum(CHANNELS[int(k[4]) - 1] for k in style_layers)
            found = sum((sh // GRID) * (sw // GRID) for sh, sw in style_sizes[i]) * (4 if rotations else 1)
            search = 2.0 * (h // GRID) * (w // GRID) * min(found, MAX_STYLE) * dims * runs
            setup += (searches - 1) * vgg_flops(h, w, last) * runs  # each refresh reads the result's features
        out.append(ScaleCost((h, w), n, step, passes * runs, setup, searches, search))
    return out


def _tile_boxes(h: int, w: int, tile: int, halo: int) -> list[tuple[int, int]]:
    """(h, w) of every padded tile of an image (core/tiling.boxes at offset 0)."""
    from .core.tiling import boxes

    return [(y1 - y0, x1 - x0) for _, (y0, y1, x0, x1) in boxes(h, w, tile, (0, 0), halo)]


def estimate(costs: Sequence[ScaleCost], rates: Rates) -> Estimate:
    """The plan's seconds at ``rates``."""
    step = tuple(c.passes * rates.overhead_s + c.step_flops / rates.vgg_flops_per_s for c in costs)
    setup = tuple(c.setup_flops / rates.vgg_flops_per_s + c.searches * c.search_flops / rates.matmul_flops_per_s
                  for c in costs)
    return Estimate(step, tuple(c.steps for c in costs), setup, rates.startup_s)


def duration(seconds: float) -> str:
    """``about 40 s``, ``about 3 min 10 s``, ``about 1 h 05 min``: two figures, the precision an estimate has."""
    s = max(1, round(seconds))
    if s < 60:
        return f"about {s} s"
    if s < 600:
        m, r = divmod(int(round(s / 10) * 10), 60)
        return f"about {m} min" + (f" {r:02d} s" if r else "")
    if s < 3600:
        return f"about {round(s / 60)} min"
    h, m = divmod(round(s / 60), 60)
    return f"about {h} h {m:02d} min"


def smaller_size(size: int, seconds_at: Callable[[int], float], limit: float = MINUTE) -> int | None:
    """The first of size × ¾, its ¾, … (each down to a multiple of 16, at least 64) whose ``seconds_at(size)`` is
    within ``limit``; None if even 64 px is not."""
    s = size
    while s > 64:
        s = max(64, int(s * 0.75) // 16 * 16)
        if seconds_at(s) <= limit:
            return s
    return None
