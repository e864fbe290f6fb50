"""The quality meter: how close a picture is to its style and to its photo, measured the same way whatever made it.

    style    = mean over relu1_1…relu5_1 of ‖G(out) − G*‖_F / ‖G*‖_F,  G = F Fᵀ / (H·W),  G* = Σ_i w_i G(style_i)
    style14  = the same over relu1_1…relu4_1 only
    content  = ‖F(out) − F(content)‖_F / ‖F(content)‖_F  at relu4_2
    colour   = sliced Wasserstein distance, in CIELAB ΔE*ab units, between the picture's pixels and the style's

Every image goes through one path first: 8-bit RGB (what a saved picture is), resized with PIL's bicubic filter so
that its long side is ``size`` (400 px by default; the picture to the content's exact evaluation shape, each style
image at its own aspect ratio), then the bundled VGG19 (the original Caffe weights, caffe preprocessing, max
pooling), whatever network made the picture. Grams are float64.

``style`` is the meter bench/ has always printed (kept for continuity). Its relu5_1 term rewards a picture that copies
object parts of the painting (eyes, a face in a photo's water): Gram statistics that deep carry objects. ``style14``
leaves relu5_1 out and ``colour`` uses no network at all, so neither pays for leakage.

Several style images: the style target is the blend of their Grams, Σ_i w_i G_i with the weights normalised to sum 1
(what the report did, ``0.5·G₁ + 0.5·G₂``), and the colour target is their pixels pooled, each image weighted w_i
whatever its pixel count. Without weights the styles count equally, as in the engine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from .errors import ConfigError
from .io.images import LoadedImage, load_image
from .weights import load_vgg

EVAL_SIZE = 400
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE14_LAYERS = STYLE_LAYERS[:4]  # no relu5_1: no reward for copied object parts
CONTENT_LAYER = "relu4_2"
COPY_LAYER = "relu4_1"  # ``copying``: deep enough for object parts (eyes, mouths), fine enough to place them
DIRECTIONS = 64  # the colour distance's projection directions (a Fibonacci lattice on the sphere)
LEVELS = 256  # quantile levels per direction
ImageLike = Any  # a path, URL, PIL image, (3, H, W) tensor in [0, 1], bytes or LoadedImage

# sRGB (IEC 61966-2-1) linear RGB → CIE XYZ, and the D65 reference white (CIE 15), as Lindbloom tabulates them.
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)
_EPS = (6 / 29) ** 3  # CIE's ε = 216/24389: below it f(t) is the linear segment


@dataclass(frozen=True)
class Distances:
    """A picture's distances from its targets (lower is closer). ``layers``: each style layer's relative distance."""

    style: float
    style14: float
    content: float
    colour: float
    layers: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, float]:
        return {"style": self.style, "style14": self.style14, "content": self.content, "colour": self.colour,
                **self.layers}


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], channels last (..., 3) → CIELAB (L*, a*, b*) under D65, float64.

    The standard formulas: undo sRGB's transfer curve (linear below 0.04045), the sRGB → XYZ matrix, then
    L* = 116 f(Y/Yn) − 16, a* = 500 (f(X/Xn) − f(Y/Yn)), b* = 200 (f(Y/Yn) − f(Z/Zn)), f(t) = t^⅓ above (6/29)³
    and t / (3 (6/29)²) + 4/29 below."""
    c = rgb.double().clamp(0, 1)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = linear @ _RGB_TO_XYZ.T / _D65
    f = torch.where(t > _EPS, t.clamp_min(_EPS) ** (1 / 3), t / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f.unbind(-1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-1)


def _directions(n: int = DIRECTIONS) -> torch.Tensor:
    """(n, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice): fixed, so the meter is deterministic."""
    i = torch.arange(n, dtype=torch.float64)
    z = 1 - (2 * i + 1) / n
    phi = i * math.pi * (3 - math.sqrt(5))
    r = (1 - z * z).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], dim=1)


def lab_quantiles(lab: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 3) Lab pixels (each with a weight, or all alike) → (DIRECTIONS, LEVELS): the quantile function of their
    projection on each direction, at the levels (k + ½) / LEVELS (the smallest value whose weighted CDF reaches it)."""
    proj = (lab.double() @ _directions().T).T.numpy()  # (D, N); numpy sorts these rows ~10x faster than torch
    levels = (np.arange(LEVELS) + 0.5) / LEVELS
    n = proj.shape[1]
    if weights is None:
        return torch.from_numpy(np.sort(proj, axis=1)[:, np.ceil(levels * n).astype(np.int64) - 1])
    order = np.argsort(proj, axis=1)
    w = weights.double().numpy()[order]
    cdf = np.cumsum(w, axis=1)
    cdf /= cdf[:, -1:]
    rows = [np.take(proj[d], order[d, np.minimum(np.searchsorted(cdf[d], levels), n - 1)]) for d in range(len(proj))]
    return torch.from_numpy(np.stack(rows))


def quantile_distance(qa: torch.Tensor, qb: torch.Tensor) -> float:
    """The colour distance between two pixel distributions given by ``lab_quantiles``: 2 × the mean over directions
    of the 1-D Wasserstein-1 distance ∫|F⁻¹(u) − G⁻¹(u)| du. For directions uniform on the sphere E|θ·t| = |t|/2,
    so the factor 2 makes a uniform colour cast of ΔE*ab = d read d: the distance is in ΔE units."""
    return float(2 * (qa - qb).abs().mean())


def colour_distance(a: torch.Tensor, b: torch.Tensor, weights_a: torch.Tensor | None = None,
                    weights_b: torch.Tensor | None = None) -> float:
    """Sliced Wasserstein distance (ΔE*ab) between two sets of Lab pixels, (N, 3) and (M, 3), optionally weighted.

    Why this one: it compares whole colour distributions (a palette of blue and yellow is not its green mean, as a
    Gaussian fit would have it), it is a metric (symmetric, 0 for identical distributions, whatever their pixel
    counts), it needs no histogram bins, it reads in perceptual ΔE units, and fixed directions make it deterministic.
    """
    return quantile_distance(lab_quantiles(a, weights_a), lab_quantiles(b, weights_b))


# -- images --------------------------------------------------------------------------------------------------------
def to_pil(image: ImageLike) -> Image.Image:
    """Any image the library takes → an 8-bit RGB PIL image (a saved picture's pixels)."""
    return image.image if isinstance(image, LoadedImage) else load_image(image).image


def to_tensor(im: Image.Image) -> torch.Tensor:  # → (1, 3, H, W) float32 in [0, 1]
    return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)


def fit(h: int, w: int, long_side: int) -> tuple[int, int]:
    """(h, w) scaled so that the long side is ``long_side``."""
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def resize(im: Image.Image, hw: tuple[int, int]) -> Image.Image:
    """PIL bicubic to exactly (h, w) (the meter's one resampling filter)."""
    return im if (im.height, im.width) == hw else im.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)


def gram(feat: torch.Tensor) -> torch.Tensor:  # (1, C, H, W) → (C, C) float64, normalised by positions
    f = feat[0].detach().cpu().double().flatten(1)
    return f @ f.T / f.shape[1]


def normalise_blend(blend: Sequence[float] | None, n: int) -> tuple[float, ...]:
    """Blend weights → n weights summing to 1 (None: the styles count equally)."""
    if blend is None:
        return (1.0 / n,) * n
    b = [float(x) for x in blend]
    if len(b) != n or any(not math.isfinite(x) or x < 0 for x in b) or sum(b) <= 0:
        raise ConfigError(f"blend {list(blend)!r} is invalid for {n} style image(s): give {n} weights, each >= 0 and "
                          "not all 0", key="blend")
    return tuple(x / sum(b) for x in b)


class Meter:
    """The targets of one content image and its style images, computed once; ``meter(picture, blend)`` measures.

    ``weights`` names the network (default ``bundled``, the one the figures in bench/README.md were made with);
    ``device`` where it runs (the distances are computed in float64 on the CPU either way)."""

    def __init__(self, content: ImageLike, styles: Sequence[ImageLike] | ImageLike, *, size: int = EVAL_SIZE,
                 weights: str = "bundled", device: str = "cpu") -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 16:
            raise ConfigError(f"size = {size!r} is invalid: give the meter's long side in pixels, 16 or more",
                              key="size")
        styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not styles:
            raise ConfigError("the meter needs at least one style image", key="styles")
        self.model = load_vgg(weights, "max", device)
        self.device, self.size = torch.device(device), size
        c = to_pil(content)
        self.shape = fit(c.height, c.width, size)  # (h, w) every picture is measured at
        self.content = self._features(resize(c, self.shape), (CONTENT_LAYER,))[CONTENT_LAYER]  # (1, C, h, w) f64
        self.style_grams: list[dict[str, torch.Tensor]] = []
        self.style_lab: list[torch.Tensor] = []  # (N_i, 3) each style's pixels in Lab, at the meter's size
        self.style_images: list[Image.Image] = []  # at the meter's size (for ``copying``)
        for s in map(to_pil, styles):
            im = resize(s, fit(s.height, s.width, size))
            self.style_images.append(im)
            self.style_grams.append({k: gram(v) for k, v in self._features(im, STYLE_LAYERS).items()})
            self.style_lab.append(srgb_to_lab(to_tensor(im)[0].permute(1, 2, 0).reshape(-1, 3)))
        self._targets: dict[tuple[float, ...], tuple[dict[str, torch.Tensor], torch.Tensor]] = {}

    def _features(self, im: Image.Image, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        x = to_tensor(im).to(self.device)
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):  # fp32 inside a caller's autocast
            return {k: v.detach().cpu().double() for k, v in self.model(x, list(layers)).items()}

    def target(self, blend: Sequence[float] | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The blended Gram per style layer and the pooled pixels' colour quantiles, for ``blend`` (kept)."""
        w = normalise_blend(blend, len(self.style_grams))
        if w not in self._targets:
            used = [i for i, x in enumerate(w) if x > 0]
            grams = {k: sum(w[i] * self.style_grams[i][k] for i in used) for k in STYLE_LAYERS}
            lab = torch.cat([self.style_lab[i] for i in used])
            per_pixel = torch.cat([torch.full((len(self.style_lab[i]),), w[i] / len(self.style_lab[i]),
                                              dtype=torch.float64) for i in used])
            self._targets[w] = grams, lab_quantiles(lab, per_pixel)  # type: ignore[assignment]
        return self._targets[w]

    def pixels(self, image: ImageLike) -> Image.Image:
        """A picture as the meter sees it: 8-bit RGB at the content's evaluation shape."""
        return resize(to_pil(image), self.shape)

    def measure(self, image: ImageLike, blend: Sequence[float] | None = None) -> Distances:
        """The picture's distances from the content and from the style target of ``blend``."""
        grams, colour_q = self.target(blend)
        im = self.pixels(image)
        feats = self._features(im, (*STYLE_LAYERS, CONTENT_LAYER))
        layers = {k: float((gram(feats[k]) - g).norm() / g.norm()) for k, g in grams.items()}
        content = float((feats[CONTENT_LAYER] - self.content).norm() / self.content.norm())
        lab = srgb_to_lab(to_tensor(im)[0].permute(1, 2, 0).reshape(-1, 3))
        return Distances(style=sum(layers.values()) / len(layers),
                         style14=sum(layers[k] for k in STYLE14_LAYERS) / len(STYLE14_LAYERS),
                         content=content, colour=quantile_distance(lab_quantiles(lab), colour_q), layers=layers)

    __call__ = measure

    def copying(self, image: ImageLike, boxes: Sequence[tuple[float, float, float, float]], style: int = 0,
                layer: str = COPY_LAYER) -> float:
        """The share of the picture's ``layer`` locations whose nearest location of style image ``style`` (centred
        cosine, as the neighbour search) lies inside ``boxes``: parts of the painting marked by hand, (x0, y0, x1,
        y1) in fractions of its width and height, e.g. its faces. A picture that copies a face from a portrait
        scores high; compare with the photo's own share (``copying(content, ...)``), which copies nothing.

        A Gram distance rewards a face copied into a photo's water (the face's statistics are the painting's); this
        measure sees it, and it is blind to brushwork, so it is a check beside the others, not a quality score."""
        from .core.neighbours import nearest

        if not 0 <= style < len(self.style_images):
            raise ConfigError(f"style = {style} is invalid: the meter has {len(self.style_images)} style image(s)",
                              key="style")
        s = self._features(self.style_images[style], (layer,))[layer][0]  # (C, h, w)
        _, h, w = s.shape
        ys, xs = (torch.arange(h, dtype=torch.float64) + 0.5) / h, (torch.arange(w, dtype=torch.float64) + 0.5) / w
        inside = torch.zeros(h, w, dtype=torch.bool)
        for x0, y0, x1, y1 in boxes:
            inside |= ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
        f = self._features(self.pixels(image), (layer,))[layer][0]
        idx = nearest(f.flatten(1).t(), s.flatten(1).t())
        return float(inside.flatten()[idx].double().mean())


def measure(image: ImageLike, content: ImageLike, styles: Sequence[ImageLike] | ImageLike,
            blend: Sequence[float] | None = None, *, size: int = EVAL_SIZE, weights: str = "bundled") -> Distances:
    """One picture measured once (the targets are built each call: use a ``Meter`` for many pictures of a pair)."""
    return Meter(content, styles, size=size, weights=weights)(image, blend)
