"""The objective's terms: each a small module with its targets as buffers, its weight, and how it adds up over tiles.

A term returns one unweighted value per batch item, shape (n,); the objective weights and sums them. ``TERMS`` is
the one list that everything else reads: the objective builds every registered term, the history, CSV, plots and
the web chart show one column per name. Adding a term is a class here (``name``, ``kind``, ``weight``, ``build``,
``forward`` and its tiled part) appended to ``TERMS``, plus its test.

How a term adds up over tiles (``kind``; see core/tiling.py):
- ``sum``: a sum over positions (content): each tile's part is added up; exact.
- ``moments``: a function of sums over positions (style: Gram matrices, means): the moments are accumulated over
  the tiles first, then the term and its gradient with respect to them.
- ``pixels``: computed on the whole image's pixels (total variation, temporal), which are cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from . import tiling
from .losses import EPS, STYLE_LOSSES, _f32, tv_loss
from .settings import RunSettings

Box = tiling.Box
Features = dict[str, torch.Tensor]


@dataclass
class TermContext:
    """What terms are built from at one scale: targets on demand (computed once, cached), guides, the batch."""

    cfgs: Sequence[RunSettings]
    content_features: Callable[[Sequence[str]], Features]  # layer → (1, C, h, w) whole-image content features
    style_stats: Callable[[Sequence[str]], list[list[Features]]]  # per region, per style image: layer → (1, C, C')
    regions: list[tuple[torch.Tensor, ...]]  # per region: blend weights (n, S) of the style images
    region_guides: list[Callable[[str], torch.Tensor | None]]  # per region: layer → (1|n, 1, h, w) guide or None
    content_guide: Callable[[str], torch.Tensor | None]
    extra: dict[str, Any] = field(default_factory=dict)  # per-frame data for terms that need it (video)
    region_weights: list[torch.Tensor] = field(default_factory=list)  # per region: (n,) factors on its style loss
    formula: str = ""  # the per-layer formula of the feature terms (core/objective.py, convention); "": loss_norm's
    average_layers: bool | None = None  # several layers averaged (relative) or summed (classic); None: loss_norm's
    content: torch.Tensor | None = None  # (1, 3, h, w): the photo at this scale (the neighbour term's query)
    query_features: Callable[[torch.Tensor, Sequence[str]], Features] | None = None  # image → whole feature maps
    # per style image: [(layer → (1, C, h, w) features, its style guide at the neighbour grid or None)], then the
    # same for its rotations when asked (the neighbour term's style sets)
    style_features: Callable[[Sequence[str]], list[list[tuple[Features, torch.Tensor | None]]]] | None = None

    @property
    def norm(self) -> str:  # the run's loss_norm (pixel terms read it)
        return self.cfgs[0].loss_norm

    @property
    def feature_formula(self) -> str:
        return self.formula or self.norm

    @property
    def averaged(self) -> bool:
        return self.norm == "relative" if self.average_layers is None else self.average_layers

    def per_item(self, values: Sequence[float], device: torch.device) -> torch.Tensor:
        return torch.tensor(list(values), device=device, dtype=torch.float32)


class Term(nn.Module):
    """One named part of the loss. ``layers``: the VGG layers it reads (empty when inactive or a pixel term)."""

    name: ClassVar[str]
    description: ClassVar[str]  # for plots, tables and the web chart's legend
    kind: ClassVar[str]  # "sum" | "moments" | "pixels"
    layers: tuple[str, ...] = ()
    idle: bool = False  # a pixel term with nothing to compare with (the temporal term on a still image)
    refresh: int = 0  # steps between two calls of ``prepare`` at the last scale (0: only at each scale's start)

    def prepare(self, images: torch.Tensor) -> None:
        """Called with the current (n, 3, H, W) images before a scale's first step (and every ``refresh`` steps at
        the last scale): terms whose targets depend on the result (neighbours) compute them here."""

    @staticmethod
    def weight(cfg: RunSettings) -> float:
        raise NotImplementedError

    @classmethod
    def build(cls, ctx: TermContext, device: torch.device) -> Term:
        raise NotImplementedError

    def forward(self, feats: Features, img: torch.Tensor) -> torch.Tensor:  # → (n,)
        raise NotImplementedError

    # -- tiles (kind "sum"): this tile's part of the whole-image value; kind "moments": the moments, then the value
    def tile_part(self, feats: Features, interior: Box, padded: Box) -> torch.Tensor:
        raise NotImplementedError

    def tile_moments(self, feats: Features, interior: Box, padded: Box) -> list[torch.Tensor]:
        raise NotImplementedError

    def from_moments(self, acc: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError


def _layer_weights(ctx: TermContext, names: Sequence[str], per_cfg: Callable[[RunSettings], dict[str, float]],
                   device: torch.device) -> dict[str, torch.Tensor]:
    tables = [per_cfg(c) for c in ctx.cfgs]
    return {k: ctx.per_item([t.get(k, 0.0) for t in tables], device) for k in names}


def _crop(t: torch.Tensor | None, layer: str, interior: Box) -> torch.Tensor | None:
    return None if t is None else tiling.global_crop(t, layer, interior)


class ContentTerm(Term):
    """Feature reconstruction (Gatys et al. eq. 1) at the content layers, optionally weighted by a content guide.

    Per layer: Σ g·(F − F̂)² over positions, divided by ‖F̂‖² (``relative``) or by F̂'s element count (``classic``,
    ``jcjohnson``: a mean). Several layers: averaged (relative) or summed (the classic tools' convention)."""

    name = "content"
    description = "content loss (before content_weight)"
    kind = "sum"

    @staticmethod
    def weight(cfg: RunSettings) -> float:
        return cfg.content_weight

    @classmethod
    def build(cls, ctx: TermContext, device: torch.device) -> Term:
        names = sorted({n for c in ctx.cfgs if c.content_weight > 0 for n in c.content_layers})
        mean = ctx.averaged
        w = _layer_weights(ctx, names, lambda c: {n: (1.0 / len(c.content_layers) if mean else 1.0)
                                                  for n in c.content_layers}, device)
        return cls(ctx.content_features(names) if names else {}, w, ctx.content_guide,
                   ctx.feature_formula == "relative")

    def __init__(self, targets: Features, layer_weights: dict[str, torch.Tensor],
                 guide: Callable[[str], torch.Tensor | None], relative: bool) -> None:
        super().__init__()
        self.layers = tuple(targets)
        self.layer_weights = layer_weights
        self.targets = {k: _f32(v) for k, v in targets.items()}
        self.guides = {k: guide(k) for k in targets}
        self.normalizers = {k: (v.pow(2).sum() + EPS if relative else torch.tensor(float(v[0].numel()), device=v.device))
                            for k, v in self.targets.items()}

    def _layer(self, k: str, feat: torch.Tensor, target: torch.Tensor, guide: torch.Tensor | None) -> torch.Tensor:
        diff = (_f32(feat) - target).pow(2)
        if guide is not None:
            diff = diff * guide
        return self.layer_weights[k] * (diff.flatten(1).sum(1) / self.normalizers[k])

    def forward(self, feats: Features, img: torch.Tensor) -> torch.Tensor:
        zero = img.new_zeros(img.shape[0], dtype=torch.float32)
        return sum((self._layer(k, feats[k], self.targets[k], self.guides[k]) for k in self.layers), zero)

    def tile_part(self, feats: Features, interior: Box, padded: Box) -> torch.Tensor:
        n = next(iter(self.layer_weights.values())).shape[0] if self.layer_weights else 1
        zero = torch.zeros(n, device=next(iter(feats.values())).device)
        return sum((self._layer(k, tiling.crop(feats[k], k, interior, padded),
                                tiling.global_crop(self.targets[k], k, interior),
                                _crop(self.guides[k], k, interior)) for k in self.layers), zero)


def _gram(flat: torch.Tensor) -> torch.Tensor:
    """(B, C, N) → F Fᵀ (B, C, C). A custom autograd Function with the symmetric backward (G' + G'ᵀ)F as one product
    was tried for speed and broke the batch-equals-one-by-one oracle (tests/test_engine.py): plain autograd here."""
    return flat @ flat.transpose(1, 2)


def support(guide: torch.Tensor | None, dense: float = 0.9) -> tiling.Box | None:
    """The box (y0, y1, x0, x1) outside which every run's guide is 0, when it covers under ``dense`` of the map: a
    region's moments need only that box, so two regions that split an image cost about one Gram between them."""
    if guide is None:
        return None
    inside = guide.amax(0)[0] > 0  # (h, w)
    rows, cols = inside.any(1).nonzero(), inside.any(0).nonzero()
    if not len(rows):
        return None
    box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
    return box if (box[1] - box[0]) * (box[3] - box[2]) < dense * inside.numel() else None


def guided_moments(feat: torch.Tensor, guide: torch.Tensor | None, where: tiling.Box | None = None
                   ) -> list[torch.Tensor]:
    """(B, C, h, w) and a guide at the same h, w → [Σ g f fᵀ (B, C, C), Σ g f (B, C), Σ g (B,)], in fp32 at least
    (half-precision Grams overflow; float64 stays float64, for oracle tests). ``where``: a box outside which the
    guide is 0 (``support``), to skip those positions.

    Departure from Gatys et al. 2017, who take the Gram of F ∘ T, i.e. weigh each position by T²: here a position
    weighs g (features times √g), and the Gram is divided by Σ g, so a region's Gram is the g-weighted mean of
    f fᵀ. The two agree for a hard (0/1) mask; for soft masks, g reads as how much a position belongs to the region:
    regions whose guides sum to 1 count every position exactly once between them (with T², a border position shared
    half and half would count 0.25 + 0.25), and the moments stay linear in g, so they add up over tiles."""
    feat = _f32(feat)
    if where is not None:
        y0, y1, x0, x1 = where
        feat, guide = feat[..., y0:y1, x0:x1], guide[..., y0:y1, x0:x1]  # type: ignore[index]
    b, c, h, w = feat.shape
    flat = feat.reshape(b, c, h * w)
    if guide is None:
        return [_gram(flat), flat.sum(-1), torch.full((b,), float(h * w), device=feat.device, dtype=feat.dtype)]
    g = guide.to(feat.dtype).reshape(guide.shape[0], 1, h * w)
    rooted = flat * g.sqrt()  # √g f: its Gram is Σ g f fᵀ
    first = flat @ g.expand(b, 1, -1).transpose(1, 2)  # Σ g f as a matrix-vector product: no (B, C, N) temporary
    return [_gram(rooted), first[..., 0], g.sum((1, 2)).expand(b)]


class StyleTerm(Term):
    """Gram (or W2) matching at the style layers (Gatys et al. eq. 3-5), one target per region and layer.

    Without guides there is one region, the whole image, whose target blends the style images' statistics with
    each run's ``style_blend`` (in target space, then one loss per layer). A region with a guide matches the
    guided statistics of its part of the output (positions weighted by the guide, normalised by its mass) to its
    own target: spatial control (Gatys et al. 2017), with one VGG pass for all regions."""

    name = "style"
    description = "style loss (before style_weight)"
    kind = "moments"

    @staticmethod
    def weight(cfg: RunSettings) -> float:
        return cfg.style_weight

    @classmethod
    def build(cls, ctx: TermContext, device: torch.device) -> Term:
        if ctx.cfgs[0].style_loss == "neighbour":  # per location: its own module (core/neighbour_term.py)
            from .neighbour_term import NeighbourTerm

            return NeighbourTerm.build(ctx, device)
        names = sorted({n for c in ctx.cfgs for n, _ in c.style_layers})
        mean = ctx.averaged
        w = _layer_weights(ctx, names, lambda c: {n: v / (sum(dict(c.style_layers).values()) if mean else 1.0)
                                                  for n, v in c.style_layers}, device)
        loss_cls = STYLE_LOSSES[ctx.cfgs[0].style_loss]
        stats = ctx.style_stats(names)
        losses = []
        for blend, per_style in zip(ctx.regions, stats):
            region = {}
            for k in names:
                stacked = torch.cat([s[k] for s in per_style], dim=0)  # (S, C, C')
                region[k] = loss_cls(torch.einsum("ns,s...->n...", blend[0], stacked), ctx.feature_formula)
            losses.append(region)
        guides = [{k: g(k) for k in names} for g in ctx.region_guides]
        return cls(names, w, losses, guides, ctx.region_weights or None)

    def __init__(self, layers: Sequence[str], layer_weights: dict[str, torch.Tensor],
                 losses: list[dict[str, nn.Module]], guides: list[dict[str, torch.Tensor | None]],
                 region_weights: list[torch.Tensor] | None = None) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self.layer_weights = layer_weights
        self.losses = nn.ModuleList(nn.ModuleDict(r) for r in losses)
        self.guides = guides
        self.supports = [{k: support(g) for k, g in r.items()} for r in guides]  # whole images only (not tiles)
        self.region_weights = region_weights  # per region (n,): its share of the image × its weight; None: 1

    def _value(self, moments_of: Callable[[int, str], list[torch.Tensor]],
               shape_of: Callable[[str], tuple[int, int, int]]) -> torch.Tensor:
        total: torch.Tensor | None = None
        for r, region in enumerate(self.losses):
            for k in self.layers:
                v = self.layer_weights[k] * region[k].from_moments(*moments_of(r, k), shape_of(k))
                if self.region_weights is not None:
                    v = self.region_weights[r] * v
                total = v if total is None else total + v
        assert total is not None
        return total

    def forward(self, feats: Features, img: torch.Tensor) -> torch.Tensor:
        f32 = {k: _f32(feats[k]) for k in self.layers}  # once per layer, not once per region
        return self._value(lambda r, k: guided_moments(f32[k], self.guides[r][k], self.supports[r][k]),
                           lambda k: tuple(feats[k].shape[1:]))

    def tile_moments(self, feats: Features, interior: Box, padded: Box) -> list[torch.Tensor]:
        out = []
        for r in range(len(self.losses)):
            for k in self.layers:
                out += guided_moments(tiling.crop(feats[k], k, interior, padded), _crop(self.guides[r][k], k, interior))
        return out

    def from_moments(self, acc: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        index = {(r, k): 3 * (r * len(self.layers) + j) for r in range(len(self.losses))
                 for j, k in enumerate(self.layers)}
        channels = {k: acc[index[(0, k)]].shape[1] for k in self.layers}
        return self._value(lambda r, k: acc[index[(r, k)]:index[(r, k)] + 3],
                           lambda k: (channels[k], *tiling.feature_shape(k, *size)))


class TVTerm(Term):
    """Total variation on the pixels (Mahendran & Vedaldi; jcjohnson's tv_weight): smooths high frequencies."""

    name = "tv"
    description = "total variation (before tv_weight)"
    kind = "pixels"

    @staticmethod
    def weight(cfg: RunSettings) -> float:
        return cfg.tv_weight

    @classmethod
    def build(cls, ctx: TermContext, device: torch.device) -> Term:
        return cls(ctx.norm)

    def __init__(self, norm: str) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, feats: Features, img: torch.Tensor) -> torch.Tensor:
        return tv_loss(img, self.norm)


class TemporalTerm(Term):
    """Temporal consistency for video (Ruder, Dosovitskiy & Brox 2016, eq. 7 and 9): for each earlier frame, the
    mean over pixels and channels of c · (x − ω)², ω its stylised output warped onto this frame by optical flow and c
    its certainty mask (0 where the flow is unreliable: disocclusions, motion boundaries), summed over the earlier
    frames. The long-term masks are "closest first" (each pixel in at most one of them), so the sum still counts a
    pixel once and the weight means the same for one earlier frame or several.

    Per-frame data: ``ctx.extra["temporal"]``, a list of (ω (1|n, 3, H, W), c (1|n, 1, H, W)) at the final size,
    carried to each scale's size. Without it (a still image) the term is idle. Pixels are in [0, 1] whatever the
    loss convention (Ruder et al.'s were on Caffe's 0-255 scale)."""

    name = "temporal"
    description = "temporal loss: masked MSE to the warped earlier frames (before temporal_weight)"
    kind = "pixels"

    @staticmethod
    def weight(cfg: RunSettings) -> float:
        return cfg.temporal_weight

    @classmethod
    def build(cls, ctx: TermContext, device: torch.device) -> Term:
        return cls([(t.to(device), m.to(device)) for t, m in ctx.extra.get("temporal") or ()])

    def __init__(self, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        super().__init__()
        self.pairs = list(pairs)
        self.idle = not self.pairs
        self._sized: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    def _at(self, size: tuple[int, int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if size not in self._sized:
            # Area averaging for both (at the final scale they are used as they are; at a coarser one, means).
            area = lambda x: x if tuple(x.shape[-2:]) == size else F.interpolate(x, size=size, mode="area")
            self._sized[size] = [(area(_f32(t)), area(_f32(m))) for t, m in self.pairs]
        return self._sized[size]

    def forward(self, feats: Features, img: torch.Tensor) -> torch.Tensor:
        total = img.new_zeros(img.shape[0], dtype=torch.float32)
        for target, mask in self._at(tuple(img.shape[-2:])):  # type: ignore[arg-type]
            total = total + ((_f32(img) - target).pow(2) * mask).flatten(1).mean(1)
        return total


TERMS: tuple[type[Term], ...] = (ContentTerm, StyleTerm, TVTerm, TemporalTerm)
TERM_NAMES: tuple[str, ...] = tuple(t.name for t in TERMS)
TERM_DESCRIPTIONS: dict[str, str] = {t.name: t.description for t in TERMS}
