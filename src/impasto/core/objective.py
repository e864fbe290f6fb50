"""The loss of a batch at one scale: the registered terms (core/terms.py), weighted per run, on one VGG pass.

``Objective(img)`` gives the per-run terms of whole images; ``tiled_backward`` back-propagates the same loss tile
by tile (core/tiling.py) with the same list of terms. Spatial guides (``Guides``) are the seam for masks: a guide
per style region over the output (with its own blend of the style images) and a content guide, used by both paths.
Masks (impasto/masks.py) are made into Guides above core; the rules that carry a guide to a layer are core/guides.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from . import tiling
from .guides import RULES, layer_guide, resize_guide
from .precision import autocast_dtype
from .settings import RunSettings
from .targets import StyleTargets, content_features
from .terms import TERMS, Term, TermContext
from .vgg import VGG19

Blend = tuple[float, ...]


@dataclass
class Region:
    """A part of the output with its own style target. ``guide`` (1|n, 1, H, W) in [0, 1] at the final size marks
    it (one per run of a batch, or one for all); ``blend`` weighs the style images for it: one blend for every run,
    one per run (a list of n blends), or None (each run's ``style_blend``). ``weight``: per run, a factor on this
    region's style loss (None: 1).

    A region's style loss is also weighted by its share of the image (the guide's mean): a region's Gram is a mean
    over its own positions, so each position's gradient grows as the region shrinks; weighting by the share keeps
    the style/content balance per pixel what it is without guides, so style_weight means the same with masks
    (departure: Gatys et al. 2017 weigh each region's loss by a free factor)."""

    guide: torch.Tensor
    blend: Blend | list[Blend] | None = None
    weight: tuple[float, ...] | None = None


@dataclass
class Guides:
    """Spatial control. No regions: the whole image is one region. ``content``: per-position weight of the content
    term (1|n, 1, H, W) at the final size (0 where the photo need not be kept, 1 where it should)."""

    regions: list[Region] = field(default_factory=list)
    content: torch.Tensor | None = None
    rule: str = "simple"  # how region guides reach each style layer: "simple" or "inside" (core/guides.py)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown guide rule {self.rule!r}: choose one of {', '.join(RULES)}")

    def at(self, size: tuple[int, int]) -> Guides:
        """The guides carried to a scale's size (area averaging)."""
        return Guides([Region(resize_guide(r.guide, size), r.blend, r.weight) for r in self.regions],
                      resize_guide(self.content, size) if self.content is not None else None, self.rule)


def _blend(cfgs: Sequence[RunSettings], n_styles: int, fixed: Blend | list[Blend] | None,
           device: torch.device) -> torch.Tensor:
    """(n, S) blend weights, each row summing to 1."""
    rows = []
    per_run = fixed is not None and len(fixed) > 0 and isinstance(fixed[0], (list, tuple))
    if per_run and len(fixed) != len(cfgs):  # type: ignore[arg-type]
        raise ValueError(f"a region has {len(fixed)} blends for a batch of {len(cfgs)} runs")  # type: ignore[arg-type]
    for i, c in enumerate(cfgs):
        own = fixed[i] if per_run else fixed  # type: ignore[index]
        b = list(own if own is not None else (c.style_blend if c.style_blend is not None else [1.0] * n_styles))
        if len(b) != n_styles:
            raise ValueError(f"style_blend has {len(b)} weights for {n_styles} style images")
        total = sum(b)
        rows.append([w / total for w in b])
    return torch.tensor(rows, device=device)


# How a loss convention meets a network (``convention``). The classic and jcjohnson conventions' weights were tuned
# on one network each (classic: torchvision's VGG19, the PyTorch exercise; jcjohnson: the original Caffe VGG19).
#
# jcjohnson on torchvision's network: activations are rescaled by one factor, Caffe's 0-255 pixels against
# torchvision's pixels divided by ~0.226·255 (exact for the first convolution; deeper layers near enough).
#
# classic on the Caffe network (bundled, or a Caffe-layout file): one factor is not enough. The two networks are
# different trainings of VGG19 and their activation scales differ per layer (after one rescale, relu1_1's RMS on
# photos is ~0.9 and relu4_1's ~23), and scale enters the classic style term to the 4th power and the content term
# to the 2nd: relu4_1 alone made 88% of the style term and style outweighed content by 1e7, so Adam painted trains
# 1, 3 and 5 of the report's study alike. torchvision's statistics cannot be measured offline, so instead the classic
# terms are *calibrated* per layer: each layer's term is divided by its own target's scale (the relative formula,
# ‖G − Ĝ‖²/‖Ĝ‖² and ‖F − F̂‖²/‖F̂‖², which no per-layer rescaling of the network changes), the layers keep the
# classic conventions' weights *summed* (style_layers' values mean each layer's share, as the report intended), and
# style_weight is re-expressed in these units by one documented constant, β·CLASSIC_CALIBRATION. torchvision's
# balance cannot be measured here, so the constant is calibrated on what the report saw on torchvision's network:
# its train 1 (β = 1e6) was not saturated with style, since train 3 (5β) came out visibly more painterly and train
# 5 (β/α 1e-4 of train 1) visibly closer to the photo. Measured on golden_gate + starry_night at 128 px, 300 steps
# (docs/how-to/study.md): with 1e-5 and 1e-6, trains 1 and 3 look alike (mean pixel difference 0.011, 0.028); with 2e-7
# train 3 is clearly the more stylised (0.032, swirls in the sky) and train 1 is the photo painted over. With
# torchvision-preprocessed weights the classic formula stays exactly the report's.
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_TO_TORCHVISION = 1.0 / (255.0 * sum(IMAGENET_STD) / 3)
CLASSIC_CALIBRATION = 2e-7


@dataclass(frozen=True)
class Convention:
    """What a ``loss_norm`` means on a network: the per-layer formula the terms use, a factor on every activation,
    whether several layers are averaged (relative) or summed (the classic tools), and factors on terms' weights."""

    formula: str
    feature_scale: float = 1.0
    average_layers: bool = False
    term_factors: tuple[tuple[str, float], ...] = ()


def convention(norm: str, preprocess: str) -> Convention:
    if norm == "relative":
        return Convention("relative", average_layers=True)
    if norm == "classic" and preprocess == "caffe":
        return Convention("relative", term_factors=(("style", CLASSIC_CALIBRATION),))
    if norm == "jcjohnson" and preprocess == "torchvision":
        return Convention(norm, feature_scale=1.0 / CAFFE_TO_TORCHVISION)
    return Convention(norm)


class Objective:
    """The registered terms for a batch at one scale, their per-run weights, and VGG under the run's precision."""

    def __init__(self, model: VGG19, content: torch.Tensor, styles: StyleTargets | Sequence[torch.Tensor],
                 cfgs: Sequence[RunSettings], guides: Guides | None = None, *, precision: str | None = None,
                 extra: dict | None = None) -> None:
        c0, dev = cfgs[0], content.device
        self.model, self.n = model, len(cfgs)
        self.amp = autocast_dtype(precision or c0.precision, dev)
        self.convention = convention(c0.loss_norm, getattr(model.preprocess, "name", ""))
        self.feature_scale = self.convention.feature_scale
        self.tile = c0.tile_size if c0.tile_size and max(content.shape[-2:]) > c0.tile_size else 0
        targets = styles if isinstance(styles, StyleTargets) else StyleTargets(styles, c0.style_scale)
        size: tuple[int, int] = tuple(content.shape[-2:])  # type: ignore[assignment]
        guides = guides if guides is not None else Guides()
        regions = guides.regions or [None]
        n_styles = len(targets.styles)
        key = (id(self.model), self.amp, self.feature_scale, model.pooling, model.padding)

        def stats(layers: Sequence[str]) -> list[list[dict[str, torch.Tensor]]]:
            one = targets.at(self.run, content, layers, c0.style_loss, self.convention.formula, c0.tile_size, key)
            return [one for _ in regions]

        def share(r: Region | None) -> torch.Tensor:  # (n,): the region's share of the image, times its weight
            if r is None:
                return torch.ones(self.n, device=dev)
            mean = r.guide.float().to(dev).mean((1, 2, 3)).expand(self.n)
            return mean * torch.tensor(r.weight, device=dev) if r.weight is not None else mean

        ctx = TermContext(
            cfgs=cfgs,
            content_features=lambda layers: content_features(self.run, content, layers, c0.tile_size),
            style_stats=stats,
            regions=[(_blend(cfgs, n_styles, r.blend if r is not None else None, dev),) for r in regions],
            region_guides=[(lambda k, g=(r.guide if r is not None else None): layer_guide(g, k, size, guides.rule))
                           for r in regions],
            region_weights=[share(r) for r in regions],
            content_guide=lambda k: layer_guide(guides.content, k, size),
            extra=extra or {},
            formula=self.convention.formula,
            average_layers=self.convention.average_layers,
            content=content,
            query_features=lambda img, layers: content_features(self.run, img, layers, c0.tile_size),
            style_features=lambda layers: targets.features(self.run, content, layers, c0.tile_size,
                                                           bool(getattr(c0, "neighbour_rotations", False)), key),
        )
        self.terms: list[Term] = [t.build(ctx, dev) for t in TERMS]
        factors = dict(self.convention.term_factors)
        self.weights = {t.name: ctx.per_item([t.weight(c) * factors.get(t.name, 1.0) for c in cfgs], dev)
                        for t in self.terms}
        self.active = [t for t in self.terms if t.kind == "pixels" and not t.idle
                       and bool((self.weights[t.name] > 0).any()) or t.kind != "pixels" and t.layers]
        self.layers = sorted({k for t in self.active for k in t.layers})
        self.halo = tiling.halo_for(self.layers)

    @property
    def refresh(self) -> int:
        """Steps between two ``prepare`` calls at the last scale (0: only at each scale's start)."""
        return max((t.refresh for t in self.active), default=0)

    @property
    def prepares(self) -> bool:
        """Whether a term's targets depend on the current images (only then are they handed to ``prepare``)."""
        return any(type(t).prepare is not Term.prepare for t in self.active)

    def prepare(self, images: torch.Tensor) -> None:
        """Let terms whose targets depend on the current (n, 3, H, W) images compute them (neighbours)."""
        for t in self.active:
            t.prepare(images)

    def run(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """VGG's activations, under autocast when the precision asks for it. The losses run outside autocast, in
        fp32 (half-precision Gram matrices overflow), and so do the targets' statistics."""
        if self.amp is None:
            feats = self.model(x, layers)
        else:
            with torch.autocast(device_type=x.device.type, dtype=self.amp):
                feats = self.model(x, layers)
        if self.feature_scale != 1.0:
            feats = {k: v * self.feature_scale for k, v in feats.items()}
        return feats

    def _weighted(self, values: dict[str, torch.Tensor], dev: torch.device) -> dict[str, torch.Tensor]:
        zero = torch.zeros(self.n, device=dev)
        out = {t.name: values.get(t.name, zero) for t in self.terms}
        total: torch.Tensor | None = None
        for t in self.terms:
            v = self.weights[t.name] * out[t.name]
            total = v if total is None else total + v
        return {"total": total if total is not None else zero, **out}

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n, 3, H, W) images → {"total", and one entry per term}, each (n,)."""
        feats = self.run(img, self.layers) if self.layers else {}
        return self._weighted({t.name: t(feats, img) for t in self.active}, img.device)

    def tiled_backward(self, images: Callable[[tiling.Box], torch.Tensor], size: tuple[int, int],
                       offset: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Back-propagate the whole-image loss tile by tile (see core/tiling.py); returns the detached terms.

        ``images(box)`` gives the (n, 3, h, w) crop of the current images, attached to the optimiser's variables.
        """
        h, w = size
        dev = self.weights[self.terms[0].name].device
        stats = [t for t in self.active if t.kind == "moments"]
        sums = [t for t in self.active if t.kind == "sum"]
        pixels = [t for t in self.active if t.kind == "pixels"]
        boxes = list(tiling.boxes(h, w, self.tile, offset, self.halo))
        # Pass 1 (no autograd): the moments of every statistics term over all tiles.
        acc: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad():
            whole = images((0, h, 0, w)).detach()
            for interior, padded in boxes:
                y0, y1, x0, x1 = padded
                feats = self.run(whole[..., y0:y1, x0:x1], self.layers)
                for t in stats:
                    m = t.tile_moments(feats, interior, padded)
                    acc[t.name] = m if t.name not in acc else [a + b for a, b in zip(acc[t.name], m)]
        # Each statistics term and its gradient with respect to its moments: small C×C computations.
        values: dict[str, torch.Tensor] = {}
        grads: dict[str, list[torch.Tensor | None]] = {}
        for t in stats:
            leaves = [a.requires_grad_(True) for a in acc[t.name]]
            v = t.from_moments(leaves, size)
            values[t.name] = v.detach()
            grads[t.name] = list(torch.autograd.grad((self.weights[t.name] * v).sum(), leaves, allow_unused=True))
        # Pass 2: each tile with autograd; the surrogate's gradient is the whole-image loss's on that tile.
        for interior, padded in boxes:
            feats = self.run(images(padded), self.layers)
            surrogate = torch.zeros((), device=dev)
            for t in stats:
                for g, m in zip(grads[t.name], t.tile_moments(feats, interior, padded)):
                    if g is not None:
                        surrogate = surrogate + (g * m).sum()
            for t in sums:
                part = t.tile_part(feats, interior, padded)
                values[t.name] = part.detach() + values[t.name] if t.name in values else part.detach()
                surrogate = surrogate + (self.weights[t.name] * part).sum()
            if surrogate.requires_grad:
                surrogate.backward()
        if pixels:
            whole = images((0, h, 0, w))
            pixel_values = {t.name: t(None, whole) for t in pixels}  # type: ignore[arg-type]
            sum(((self.weights[k] * v).sum() for k, v in pixel_values.items()), torch.zeros((), device=dev)).backward()
            values.update({k: v.detach() for k, v in pixel_values.items()})
        return self._weighted(values, dev)
