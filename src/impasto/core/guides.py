"""Spatial guides carried to each layer, for guided Gram matrices (Gatys et al. 2017, "Controlling Perceptual
Factors in Neural Style Transfer", section 4: spatial control).

A guide is a (B|1, 1, H, W) map in [0, 1] at the image's resolution: how much each pixel belongs to a region. A layer
sees it at its own resolution by one of two rules (the paper's names):

- ``simple``: a position's weight is the mean of the guide over the s × s pixels it covers (s: the layer's stride).
  A position near the border counts for both regions, and its receptive field reaches across the border, so each
  style's gradient spills a little into the other region (at relu5_1, up to 85 px at the final size).
- ``inside``: the guide is first eroded by the layer's receptive-field reach (``tiling.reach``: a min-pool over a
  square of that radius, at the image's resolution), then each position takes the least value over its s × s
  pixels: a position weighs the least guide value over its whole receptive field, so a position whose field
  crosses the border does not count, and no style reaches over it (a region's Gram does not depend on a single
  pixel outside it: tests/test_masks.py). The image's own edges do not erode (VGG pads with zeros there, not with
  another region). A region too small for a deep layer's reach (a thin strip, any region at the coarsest scales)
  would vanish: the radius is halved until at least ``MIN_KEPT`` of the region's mass is left (departure: the
  paper erodes by the full field and lets small regions lose their deep layers).

Also ``feather`` (a Gaussian blur for soft edges) and ``dilate``. Tensors in, tensors out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import tiling

RULES = ("inside", "simple")
MIN_KEPT = 0.25  # "inside": the least share of a region's mass that an eroded guide keeps (else a smaller radius)


def erode(guide: torch.Tensor, radius: int) -> torch.Tensor:
    """Min-pool over a (2·radius + 1)² square, separably (rows then columns: the same as the square, far cheaper).
    Max pooling pads with −∞, so negated it pads with +∞: the image's edges do not erode."""
    if radius <= 0:
        return guide
    k = 2 * radius + 1
    g = F.max_pool2d(-guide.float(), (1, k), stride=1, padding=(0, radius))
    return -F.max_pool2d(g, (k, 1), stride=1, padding=(radius, 0))


def dilate(guide: torch.Tensor, radius: int) -> torch.Tensor:
    """Max-pool over a (2·radius + 1)² square (grows the marked area)."""
    if radius <= 0:
        return guide
    k = 2 * radius + 1
    g = F.max_pool2d(guide.float(), (1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(g, (k, 1), stride=1, padding=(radius, 0))


def _blocks(guide: torch.Tensor, layer: str, size: tuple[int, int], reduce: str) -> torch.Tensor:
    """A guide at the image size → one value per position of ``layer``: the mean (or the min) over the s × s pixels
    the position covers (s its stride; the pixels past the last whole block, which pooling drops, are left out)."""
    s = tiling.stride(layer)
    fh, fw = tiling.feature_shape(layer, *size)
    g = resize_guide(guide, size)[..., : fh * s, : fw * s]
    if s == 1:
        return g
    return F.avg_pool2d(g, s) if reduce == "mean" else -F.max_pool2d(-g, s)


def inside(guide: torch.Tensor, layer: str, size: tuple[int, int]) -> torch.Tensor:
    """Each position of ``layer`` weighs the least guide value over its whole receptive field (its pixels ± the
    reach), per batch item; a smaller reach where that would keep less than MIN_KEPT of the region's mass."""
    reach = tiling.reach(layer)
    out = []
    for g in resize_guide(guide, size).float().split(1):  # (1, 1, H, W) each: items may need different radii
        mass, radius = float(_blocks(g, layer, size, "mean").sum()), reach
        kept = _blocks(erode(g, radius), layer, size, "min")
        while radius > 0 and float(kept.sum()) < MIN_KEPT * mass:
            radius //= 2
            kept = _blocks(erode(g, radius), layer, size, "min")
        out.append(kept)
    return torch.cat(out)


def resize_guide(guide: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A guide (B|1, 1, H, W) carried to another resolution by area averaging (each position's weight is the mean
    of the weights it covers)."""
    if tuple(guide.shape[-2:]) == tuple(size):
        return guide
    return F.interpolate(guide.float(), size=size, mode="area")


def layer_guide(guide: torch.Tensor | None, layer: str, size: tuple[int, int], rule: str = "simple"
                ) -> torch.Tensor | None:
    """A guide at the image size ``size`` → at ``layer``'s feature shape, by ``rule`` (``simple`` or ``inside``)."""
    if guide is None:
        return None
    if rule not in RULES:
        raise ValueError(f"unknown guide rule {rule!r}: choose one of {', '.join(RULES)}")
    return inside(guide, layer, size) if rule == "inside" else _blocks(guide, layer, size, "mean")


def feather(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur of standard deviation ``sigma`` pixels (soft edges), separable; edges replicate."""
    if sigma <= 0:
        return mask.float()
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    m = mask.float()
    m = F.conv2d(F.pad(m, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    m = F.conv2d(F.pad(m, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    return m.clamp(0, 1)
