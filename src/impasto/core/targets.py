"""Target preparation, apart from scoring: content features and style statistics, computed once, without autograd.

Style targets depend only on the style images, the scale's size, the layers and the loss convention, so a
``StyleTargets`` keeps them per scale: a video builds them once for all its frames, a batch once for all its runs.
Each style image is resized for a scale as the content is (``style_size``: its aspect ratio kept and its side
``style_scale`` × the content's, or stretched to the content's shape), and, with tiles, its statistics are
accumulated tile by tile (they are sums over positions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from . import tiling
from .guides import layer_guide, resize_guide
from .losses import STYLE_LOSSES
from .schedule import fit_side
from .terms import guided_moments

Run = Callable[[torch.Tensor, Sequence[str]], dict[str, torch.Tensor]]  # image → features (autocast, scaled)
Transform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (style, content at this scale) → style


def resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) → (B, C, *size): antialiased bicubic, clamped to [0, 1] (images; a no-op at the same size)."""
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def style_size(style: torch.Tensor | tuple[int, int], content_size: tuple[int, int], style_scale: float,
               fit: str = "keep", side: str = "long", least: int = 1) -> tuple[int, int]:
    """A style image's (h, w) at a scale whose content is ``content_size``, from the style (or its (h, w)).

    ``keep``: its aspect ratio kept, its ``side`` side (the side ``size`` sets) ``style_scale`` × the content's there,
    as the classic exercise's ``load_image`` would have sized a style without ``shape``. ``stretch``: the content's
    shape × ``style_scale``, aspect ratio not kept (the exercise's ``load_image(style, shape=content.shape[-2:])``).
    ``least``: the fewest pixels for the side that is set."""
    h, w = style.shape[-2:] if isinstance(style, torch.Tensor) else style
    ch, cw = content_size
    if fit == "stretch":
        return max(least, round(ch * style_scale)), max(least, round(cw * style_scale))
    if side == "short":
        return fit_side(h, w, max(least, round(min(ch, cw) * style_scale)), "short")
    long = max(least, round(max(ch, cw) * style_scale))
    s = long / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


@torch.no_grad()
def content_features(run: Run, content: torch.Tensor, layers: Sequence[str], tile: int) -> dict[str, torch.Tensor]:
    """The content's activations at ``layers`` (whole feature maps; assembled from tiles when ``tile``)."""
    if not layers:
        return {}
    if tile and max(content.shape[-2:]) > tile:
        return tiling.tiled_features(run, content, list(layers), tile, halo=tiling.halo_for(layers))
    return dict(run(content, list(layers)))


@torch.no_grad()
def style_stats(run: Run, style: torch.Tensor, layers: Sequence[str], style_loss: str, norm: str, tile: int,
                guide: torch.Tensor | None = None, rule: str = "simple") -> dict[str, torch.Tensor]:
    """One style image's statistics per layer, (1, C, C) Grams or (1, C, C+1) covariance-and-mean, optionally over
    the part of it that ``guide`` (1, 1, h, w) marks (a region's own style source), carried to each layer by
    ``rule`` (core/guides.py)."""
    loss_cls = STYLE_LOSSES[style_loss]
    size = tuple(style.shape[-2:])
    if tile and max(size) > tile:
        halo = tiling.halo_for(layers)
        guides = {k: layer_guide(guide, k, size, rule) for k in layers}  # type: ignore[arg-type]
        acc: dict[str, list[torch.Tensor]] = {}
        for interior, padded in tiling.boxes(*size, tile, halo=halo):
            py0, py1, px0, px1 = padded
            feats = run(style[..., py0:py1, px0:px1], list(layers))
            for k in layers:
                g = guides[k]
                m = guided_moments(tiling.crop(feats[k], k, interior, padded),
                             None if g is None else tiling.global_crop(g, k, interior))
                acc[k] = m if k not in acc else [a + b for a, b in zip(acc[k], m)]
        return {k: loss_cls.stats_from_moments(*acc[k], norm) for k in layers}  # type: ignore[attr-defined]
    feats = run(style, list(layers))
    return {k: loss_cls.stats_from_moments(*guided_moments(v, layer_guide(guide, k, size, rule)), norm)  # type: ignore[attr-defined]
            for k, v in feats.items()}


@torch.no_grad()
def style_features(run: Run, style: torch.Tensor, layers: Sequence[str], tile: int, guide: torch.Tensor | None = None,
                   rule: str = "simple", rotations: bool = False) -> list[tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
    """One style image's whole feature maps at ``layers`` and its guide carried to the neighbour grid (or None);
    with ``rotations``, then the same for the image turned by 90°, 180° and 270° (more strokes to choose from)."""
    from .neighbours import GRID_LAYER

    out = []
    for turns in (range(4) if rotations else range(1)):
        s = torch.rot90(style, turns, (-2, -1))
        g = None if guide is None else torch.rot90(guide, turns, (-2, -1))
        feats = content_features(run, s, layers, tile)
        out.append((feats, layer_guide(g, GRID_LAYER, tuple(s.shape[-2:]), rule)))  # type: ignore[arg-type]
    return out


class StyleTargets:
    """The style images' statistics per scale, built on first use and kept (for every frame of a video).

    ``guides``: an optional guide per style image (its own region, target side), at the style image's size, carried
    to each layer by ``rule`` (core/guides.py). ``fit`` and ``side``: how each is sized (``style_size``).
    With a ``transform`` that depends on the content (colour matching), the statistics change with the content and
    are recomputed whenever it changes."""

    def __init__(self, styles: Sequence[torch.Tensor], style_scale: float,
                 guides: Sequence[torch.Tensor | None] | None = None, transform: Transform | None = None,
                 rule: str = "simple", fit: str = "keep", side: str = "long") -> None:
        self.styles = list(styles)
        self.style_scale, self.fit, self.side = style_scale, fit, side
        self.guides = list(guides) if guides is not None else [None] * len(self.styles)
        if len(self.guides) != len(self.styles):
            raise ValueError(f"{len(self.guides)} style guides for {len(self.styles)} style images")
        self.transform = transform
        self.rule = rule
        self._cache: dict[tuple, list[dict[str, torch.Tensor]]] = {}
        self.builds = 0  # how many times statistics were computed (tests and benchmarks read it)

    def _sized(self, content: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Each style image and its guide as they are at the scale whose content is ``content``."""
        size = tuple(content.shape[-2:])
        out = []
        for style, guide in zip(self.styles, self.guides):
            s = resize(style, style_size(style, size, self.style_scale, self.fit, self.side))  # type: ignore[arg-type]
            if self.transform is not None:
                s = self.transform(s, content)
            out.append((s, resize_guide(guide, tuple(s.shape[-2:])) if guide is not None else None))  # type: ignore[arg-type]
        return out

    def features(self, run: Run, content: torch.Tensor, layers: Sequence[str], tile: int, rotations: bool = False,
                 key: tuple = ()) -> list[list[tuple[dict[str, torch.Tensor], torch.Tensor | None]]]:
        """Per style image: its feature maps at ``layers`` (and its rotations'), for the neighbour term, kept like
        the statistics."""
        cache_key = ("features", tuple(content.shape[-2:]), tuple(layers), tile, rotations, *key)
        if self.transform is not None:
            cache_key += (id(content), content.data_ptr())
        if cache_key not in self._cache:
            if self.transform is not None:
                self._cache.clear()
            self._cache[cache_key] = [style_features(run, s, layers, tile, g, self.rule, rotations)  # type: ignore[misc]
                                      for s, g in self._sized(content)]
            self.builds += 1
        return self._cache[cache_key]  # type: ignore[return-value]

    def at(self, run: Run, content: torch.Tensor, layers: Sequence[str], style_loss: str, norm: str,
           tile: int, key: tuple = ()) -> list[dict[str, torch.Tensor]]:
        """Per style image: layer → statistics, for the scale whose content is ``content`` (1, 3, h, w)."""
        size = tuple(content.shape[-2:])
        cache_key = (size, tuple(layers), style_loss, norm, tile, *key)
        if self.transform is not None:
            cache_key += (id(content), content.data_ptr())
        if cache_key not in self._cache:
            if self.transform is not None:
                self._cache.clear()  # content-dependent: keep only the latest
            out = [style_stats(run, s, layers, style_loss, norm, tile, g, self.rule) for s, g in self._sized(content)]
            self._cache[cache_key] = out
            self.builds += 1
        return self._cache[cache_key]
