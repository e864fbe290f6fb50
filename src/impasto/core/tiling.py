"""Whole-image gradients from tiles, for images too large to run through VGG at once (print sizes, 4096 px).

Every style statistic is made of sums over positions (``losses.moments``), and sums add up over tiles. So one step
is two passes over the tiles: the first, without autograd, accumulates each layer's moments and the content term;
the style loss and its gradient with respect to those moments are then a small C×C computation; the second pass
runs each tile with autograd and back-propagates the linear surrogate ⟨∂L/∂moments, tile moments⟩, whose gradient is
exactly the whole-image loss's gradient restricted to the tile. Each tile is run with a halo of context so that its
interior's activations are exactly the whole image's: the halo is the receptive field's reach of the deepest
layer used (``halo_for``), rounded up to the ALIGN grid so that every pooling window of a padded tile is one of the
whole image's. The tile grid moves by a random offset each step (a guard: it costs nothing and keeps any numerical
difference at tile borders from settling into seams). Cost: about 1.35× a whole-image step (one extra
forward), memory: one tile's activations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from .vgg import LAYER_INDEX, LAYER_NAMES

ALIGN = 16  # the deepest stride up to relu5_x: tile borders on this grid map exactly onto every feature map


def reach(layer: str) -> int:
    """How far (in input pixels, on either side) the receptive field of one position of ``layer`` extends beyond
    the input pixels it covers: 3×3 convolutions (padding 1) add one step of the current stride on both sides;
    2×2 poolings of stride 2 add one step on the far side and double the stride."""
    left = right = 0
    jump = 1
    for name in LAYER_NAMES[: LAYER_INDEX[layer] + 1]:
        if name.startswith("conv"):
            left, right = left + jump, right + jump
        elif name.startswith("pool"):
            right += jump
            jump *= 2
    return max(left, right)


def halo_for(layers: Iterable[str]) -> int:
    """The context a tile needs for its interior's activations to be the whole image's, at every given layer."""
    deepest = max((reach(k) for k in layers), default=0)
    return -(-deepest // ALIGN) * ALIGN


HALO = halo_for(["relu5_1"])  # 96: the default layers' (relu5_1's reach is 85 px)

Box = tuple[int, int, int, int]  # y0, y1, x0, x1


def stride(layer: str) -> int:
    """How many input pixels one position of a layer's output covers (a side)."""
    pools = sum(n.startswith("pool") for n in LAYER_NAMES[: LAYER_INDEX[layer] + 1])
    return 2**pools


def _cuts(n: int, tile: int, offset: int) -> list[tuple[int, int]]:
    edges = [0, *(b for b in range(offset, n, tile) if 0 < b < n), n]
    return list(zip(edges, edges[1:]))


def boxes(h: int, w: int, tile: int, offset: tuple[int, int] = (0, 0), halo: int = HALO) -> Iterator[tuple[Box, Box]]:
    """(interior, padded) boxes covering an (h, w) image; interiors partition it, borders on the ALIGN grid."""
    for y0, y1 in _cuts(h, tile, offset[0]):
        for x0, x1 in _cuts(w, tile, offset[1]):
            yield (y0, y1, x0, x1), (max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo))


def random_offset(tile: int, generator: torch.Generator) -> tuple[int, int]:
    steps = max(1, tile // ALIGN)
    oy, ox = torch.randint(0, steps, (2,), generator=generator).tolist()
    return oy * ALIGN, ox * ALIGN


def crop(feat: torch.Tensor, layer: str, interior: Box, padded: Box) -> torch.Tensor:
    """The interior's part of a padded tile's feature map."""
    s = stride(layer)
    y0, y1, x0, x1 = interior
    py0, _, px0, _ = padded
    return feat[..., (y0 - py0) // s:(y1 - py0) // s, (x0 - px0) // s:(x1 - px0) // s]


def global_crop(feat: torch.Tensor, layer: str, interior: Box) -> torch.Tensor:
    """The interior's part of a whole-image feature map."""
    s = stride(layer)
    y0, y1, x0, x1 = interior
    return feat[..., y0 // s:y1 // s, x0 // s:x1 // s]


def feature_shape(layer: str, h: int, w: int) -> tuple[int, int]:
    s = stride(layer)
    return h // s, w // s


@torch.no_grad()
def tiled_features(model: Callable[..., dict[str, torch.Tensor]], img: torch.Tensor, layers: list[str], tile: int,
                   halo: int = HALO) -> dict[str, torch.Tensor]:
    """Whole feature maps of ``layers`` assembled from tiles (for content targets)."""
    h, w = img.shape[-2:]
    out: dict[str, torch.Tensor] = {}
    for interior, padded in boxes(h, w, tile, halo=halo):
        py0, py1, px0, px1 = padded
        feats = model(img[..., py0:py1, px0:px1], layers)
        for k, v in feats.items():
            if k not in out:
                out[k] = v.new_zeros((*v.shape[:2], *feature_shape(k, h, w)))
            global_crop(out[k], k, interior).copy_(crop(v, k, interior, padded))
    return out


def tiled_moments(model: Callable[..., dict[str, torch.Tensor]], img: torch.Tensor, layers: list[str], tile: int,
                  moments_fn: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                  offset: tuple[int, int] = (0, 0), halo: int = HALO) -> dict[str, list[torch.Tensor]]:
    """Each layer's (Σ f fᵀ, Σ f, positions) over the whole image, accumulated tile by tile (no autograd)."""
    h, w = img.shape[-2:]
    acc: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for interior, padded in boxes(h, w, tile, offset, halo):
            py0, py1, px0, px1 = padded
            feats = model(img[..., py0:py1, px0:px1], layers)
            for k in layers:
                m = moments_fn(crop(feats[k], k, interior, padded))
                if k in acc:
                    for a, b in zip(acc[k], m):
                        a.add_(b)
                else:
                    acc[k] = [t.clone() for t in m]
    return acc
