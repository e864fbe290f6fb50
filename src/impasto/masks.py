"""Masks → the engine's spatial guides (core/objective.Guides): a style per region, the photo kept where asked.

Gatys et al. 2017 (spatial control): each style image gets a region of the result; the style loss of a region
compares the Gram matrices of its own part of the output (guided Gram matrices, core/terms.guided_moments) with
its style image's. The settings name the masks (``masks``, ``mask_colors``, ``keep_mask``, ``style_masks``: paths
or URLs) or the api is handed them as images; this module loads and checks them (one line per problem, before any
work) and makes, for a batch of runs:

- one region per style image, its guide (n, 1, H, W) at the final size: the mask, feathered, overlaps shared
  (masks summing over 1 are divided by their sum), minus what is kept; its target that style image alone; its
  loss weighted by ``style_blend`` as strengths (each weight × the number of styles, so equal weights change
  nothing). A run of the batch without masks gets the whole image in every region, each with its own blend and a
  weight of 1/S: exactly its unmasked loss, so runs with and without masks share a batch (and a sweep can vary them).
- the keep mask: style weight 0 there (every region's guide × (1 − keep)), the content weighted KEEP_CONTENT×
  there, and the photo composited over the result at the end (``inputs.postprocess``): the kept pixels are the
  photo's. It is dilated by 3σ of the feather before blurring, so that the composite is the photo over the whole
  mask and the seam's ramp lies outside it.
- the style images' own guides (``style_masks``), at their prepared sizes.
- transparency, through the same guides: where the photo is fully transparent (``opaque`` 0) no region and no
  content term sees a pixel, as if an ignore mask covered it; a style image's alpha is its style guide (times its
  ``style_masks`` entry), so its transparent part adds nothing to its statistics. A print's crop (``box``) applies
  to the masks drawn over the photo as it does to the photo.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from .config import StyleConfig
from .core.guides import dilate, feather
from .core.objective import Guides, Region
from .errors import ConfigError, ImageError
from .io.fetch import is_url, read_url
from .io.images import LoadedImage, load_image, tensor_to_pil, to_rgb

MASK_FIELDS = ("masks", "mask_colors", "keep_mask", "style_masks")
MIN_SHARE = 0.001  # a region (or a keep mask) must cover at least 0.1% of the result
MIN_COLOR_SHARE = 0.005  # colours covering less (specks, anti-aliased edges) join the nearest main colour
COLOR_MERGE = 48.0  # main colours closer than this (RGB, 0-255) are one colour (JPEG noise, gradients in a fill)
KEEP_CONTENT = 4.0  # content weight where the photo is kept, relative to elsewhere


@dataclass
class MaskSet:
    """A batch's masks as the engine and the post-processing take them."""

    guides: Guides | None = None
    keeps: list[torch.Tensor | None] = field(default_factory=list)  # per run: (1, 1, H, W) feathered, or None
    style_guides: list[torch.Tensor | None] | None = None  # per style image, at its prepared size
    names: dict[str, Any] = field(default_factory=dict)  # labels of in-memory masks, for the recipe
    notes: list[str] = field(default_factory=list)


def _label(source: Any) -> str:
    if isinstance(source, LoadedImage):
        return source.name
    if isinstance(source, (str, os.PathLike)):
        return str(os.fspath(source))
    for kind, label in ((Image.Image, "<PIL image>"), (torch.Tensor, "<tensor>"), (bytes, "<upload>")):
        if isinstance(source, kind):
            return label
    return "<image>"


def _decoded(source: Any, name: str, max_pixels: int) -> Image.Image:
    """A mask source → a PIL image in its own mode (alpha kept). Files, URLs and bytes are checked by ``load_image``
    (missing, not an image, too large: its one-line errors), then opened again to keep their alpha channel."""
    if isinstance(source, LoadedImage):
        return source.image
    if isinstance(source, Image.Image):
        return ImageOps.exif_transpose(source)
    if isinstance(source, torch.Tensor):
        t = source.detach().float().cpu()
        t = t.reshape(t.shape[-2:]) if t.dim() >= 2 and t.numel() == t.shape[-1] * t.shape[-2] else t
        if t.dim() == 2:
            return Image.fromarray((t.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8), "L")
        return tensor_to_pil(t)
    if isinstance(source, (str, os.PathLike)) and is_url(os.fspath(source)):  # type: ignore[arg-type]
        source = read_url(os.fspath(source))  # type: ignore[arg-type]
    load_image(source, max_pixels=max_pixels, name=name)  # the checks and their messages
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return ImageOps.exif_transpose(im)


def to_grey(im: Image.Image) -> Image.Image:
    """The alpha channel when the image has a non-opaque one (painted over transparency), else the grey levels."""
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        alpha = im.convert("RGBA").getchannel("A")
        if alpha.getextrema() != (255, 255):
            return alpha
    return to_rgb(im).convert("L")


Box = tuple[float, float, float, float]  # (left, top, right, bottom) as fractions: the part of the photo kept
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


def _crop(im: Image.Image, box: Box) -> Image.Image:
    if box == WHOLE:
        return im
    w, h = im.size
    return im.crop((round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h)))


def _tensor(grey: Image.Image, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    h, w = size
    if grey.size != (w, h):
        grey = grey.resize((w, h), Image.Resampling.BILINEAR)  # antialiased when shrinking
    arr = np.asarray(grey, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).view(1, 1, h, w).to(device)


def load_mask(source: Any, name: str, size: tuple[int, int], device: torch.device,
              max_pixels: int = 40_000_000, box: Box = WHOLE) -> torch.Tensor:
    """One mask (greyscale or alpha, any size) → (1, 1, h, w) in [0, 1] at ``size`` (of its part ``box``)."""
    return _tensor(_crop(to_grey(_decoded(source, name, max_pixels)), box), size, device)


def split_colors(source: Any, name: str, n_styles: int, size: tuple[int, int], device: torch.device,
                 max_pixels: int = 40_000_000, box: Box = WHOLE) -> tuple[list[torch.Tensor], list[str]]:
    """A colour-coded image → one (1, 1, h, w) 0/1 mask per style image, and the colours in style order (hex).

    The main colours are those covering at least MIN_COLOR_SHARE of the image, after merging colours within
    COLOR_MERGE of each other; every pixel goes to its nearest main colour. They are ordered by where each first
    appears, reading from the top-left."""
    h, w = size
    rgb = _crop(to_rgb(_decoded(source, name, max_pixels)), box).resize((w, h), Image.Resampling.NEAREST)  # no new
    # colours
    arr = np.asarray(rgb, dtype=np.int64).reshape(-1, 3)
    keys = (arr[:, 0] >> 3) << 10 | (arr[:, 1] >> 3) << 5 | (arr[:, 2] >> 3)
    counts = np.bincount(keys, minlength=1 << 15)
    bins = [int(b) for b in np.argsort(-counts) if counts[b] >= MIN_COLOR_SHARE * len(keys)]
    centres: list[np.ndarray] = []
    weights: list[float] = []
    for b in bins:  # largest first: each bin joins a centre within COLOR_MERGE, or starts one
        colour = arr[keys == b].mean(0)
        near = [i for i, c in enumerate(centres) if np.linalg.norm(c - colour) < COLOR_MERGE]
        if near:
            i = near[0]
            n = float(counts[b])
            centres[i] = (centres[i] * weights[i] + colour * n) / (weights[i] + n)
            weights[i] += n
        else:
            centres.append(colour)
            weights.append(float(counts[b]))
    dist = np.stack([np.linalg.norm(arr - c, axis=1) for c in centres])  # (S, h·w)
    nearest = dist.argmin(0)
    first = [int(np.argmax((nearest == i) & (dist[i] < COLOR_MERGE))) for i in range(len(centres))]
    order = sorted(range(len(centres)), key=lambda i: first[i])
    hexes = ["#" + "".join(f"{round(float(v)):02x}" for v in centres[i]) for i in order]
    if len(centres) != n_styles:
        raise ImageError(f"{name}: {len(centres)} colour{'s' if len(centres) != 1 else ''} "
                         f"({', '.join(hexes) or 'none'}) for {n_styles} style image{'s' if n_styles != 1 else ''};"
                         " paint one flat colour per style image (specks under 0.5% of the image are ignored)")
    masks = [torch.from_numpy((nearest == i).astype(np.float32)).view(1, 1, h, w).to(device) for i in order]
    return masks, hexes


def _share(t: torch.Tensor) -> float:
    return float(t.float().mean())


class _Loader:
    """Loads each source once per batch (variants of a sweep often share masks)."""

    def __init__(self, size: tuple[int, int], device: torch.device, max_pixels: int, box: Box = WHOLE) -> None:
        self.size, self.device, self.max_pixels, self.box = size, device, max_pixels, box
        self.cache: dict[Any, Any] = {}

    def key(self, kind: str, source: Any, *extra: Any) -> Any:
        return (kind, os.fspath(source) if isinstance(source, (str, os.PathLike)) else id(source), *extra)

    def mask(self, source: Any, name: str, size: tuple[int, int] | None = None) -> torch.Tensor:
        k = self.key("mask", source, size)
        if k not in self.cache:  # a mask over the photo (no size of its own) is cropped as the photo is
            self.cache[k] = load_mask(source, name, size or self.size, self.device, self.max_pixels,
                                      self.box if size is None else WHOLE)
        return self.cache[k]

    def colors(self, source: Any, name: str, n: int) -> tuple[list[torch.Tensor], list[str]]:
        k = self.key("colors", source, n)
        if k not in self.cache:
            self.cache[k] = split_colors(source, name, n, self.size, self.device, self.max_pixels, self.box)
        return self.cache[k]


def _count(key: str, given: Sequence[Any], n_styles: int) -> None:
    if len(given) != n_styles:
        raise ConfigError(f"{key}: {len(given)} mask{'s' if len(given) != 1 else ''} for {n_styles} style "
                          f"image{'s' if n_styles != 1 else ''}; give one mask per style image, in the same order",
                          key=key)


def _regions(cfg: StyleConfig, src: Mapping[str, Any], loader: _Loader, style_names: Sequence[str],
             notes: list[str]) -> torch.Tensor | None:
    """One run's region masks (S, 1, H, W), feathered and with overlaps shared, or None without masks."""
    n = len(style_names)
    if src.get("masks") is not None:
        _count("masks", src["masks"], n)
        masks = [loader.mask(m, f"mask {i + 1} ({_label(m)})") for i, m in enumerate(src["masks"])]
    elif src.get("mask_colors") is not None:
        masks, hexes = loader.colors(src["mask_colors"], f"mask_colors ({_label(src['mask_colors'])})", n)
        note = "mask colours: " + ", ".join(f"{c} → {s}" for c, s in zip(hexes, style_names))
        if note not in notes:
            notes.append(note)
    else:
        return None
    sigma = cfg.mask_feather * max(loader.size)
    m = torch.cat([feather(x, sigma) for x in masks])  # (S, 1, H, W)
    return m / m.sum(0, keepdim=True).clamp_min(1.0)


def _keep(cfg: StyleConfig, src: Mapping[str, Any], loader: _Loader) -> torch.Tensor | None:
    source = src.get("keep_mask")
    if source is None:
        return None
    name = f"keep_mask ({_label(source)})"
    k = loader.mask(source, name)
    if _share(k) < MIN_SHARE:
        raise ImageError(f"{name} is empty (black or transparent): paint white where the photo should be kept")
    sigma = cfg.mask_feather * max(loader.size)
    k = feather(dilate(k, math.ceil(3 * sigma)), sigma) if sigma > 0 else k
    if _share(1 - k) < MIN_SHARE:
        raise ImageError(f"{name} covers the whole image: nothing is left to paint; mark only what to keep")
    return k


def _check_regions(regions: torch.Tensor, keep: torch.Tensor | None, src: Mapping[str, Any],
                   style_names: Sequence[str]) -> None:
    for r in range(regions.shape[0]):
        part = regions[r] * (1 - keep[0]) if keep is not None else regions[r]
        if _share(part) < MIN_SHARE:
            what = (f"mask {r + 1} ({_label(src['masks'][r])})" if src.get("masks") is not None
                    else f"the colour of style {r + 1} in mask_colors")
            why = "is empty (black or transparent)" if _share(regions[r]) < MIN_SHARE else "lies inside keep_mask"
            raise ImageError(f"{what} {why}: style {r + 1} ({style_names[r]}) would go nowhere; paint where it goes "
                             "or leave that style image out")


def _style_guides(cfg: StyleConfig, src: Mapping[str, Any], loader: _Loader,
                  style_sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor | None] | None:
    given = src.get("style_masks")
    if given is None:
        return None
    _count("style_masks", given, len(style_sizes))
    out: list[torch.Tensor | None] = []
    for i, (m, size) in enumerate(zip(given, style_sizes)):
        if m is None or (isinstance(m, str) and m == "none"):
            out.append(None)
            continue
        name = f"style mask {i + 1} ({_label(m)})"
        g = loader.mask(m, name, size)
        if _share(g) < MIN_SHARE:
            raise ImageError(f"{name} is empty (black or transparent): mark the part of style image {i + 1} to use")
        out.append(g)
    return out


def prepare_masks(cfgs: Sequence[StyleConfig], size: tuple[int, int], style_names: Sequence[str],
                  style_sizes: Sequence[tuple[int, int]], device: torch.device,
                  images: Mapping[str, Any] | None = None, *, opaque: torch.Tensor | None = None,
                  style_alphas: Sequence[torch.Tensor | None] = (), box: Box = WHOLE) -> MaskSet:
    """The batch's masks (from each config, or ``images`` for every run) → a MaskSet; raises before any work.
    ``opaque`` (1, 1, H, W): where the photo is not fully transparent; ``style_alphas``: each style image's alpha at
    its prepared size (or None); ``box``: the part of the photo a print keeps."""
    images = dict(images or {})
    loader = _Loader(size, device, cfgs[0].max_pixels, box)
    notes: list[str] = []
    sources = [{k: images.get(k, getattr(c, k)) for k in MASK_FIELDS} for c in cfgs]
    if any(s["masks"] is not None and s["mask_colors"] is not None for s in sources):
        raise ConfigError("masks and mask_colors are both given: give one mask per style image or one colour-coded "
                          "image, not both", key="mask_colors")
    regions = [_regions(c, s, loader, style_names, notes) for c, s in zip(cfgs, sources)]
    keeps = [_keep(c, s, loader) for c, s in zip(cfgs, sources)]
    for m, k, s in zip(regions, keeps, sources):
        if m is not None:
            _check_regions(m, k, s, style_names)
    style_guides = _with_alphas(_style_guides(cfgs[0], sources[0], loader, style_sizes), style_alphas, style_names)
    names = {k: ([_label(x) for x in v] if isinstance(v, (list, tuple)) else _label(v))
             for k, v in images.items() if v is not None}
    return MaskSet(_guides(cfgs, regions, keeps, len(style_names), size, device, opaque), keeps, style_guides, names,
                   notes)


def _with_alphas(guides: list[torch.Tensor | None] | None, alphas: Sequence[torch.Tensor | None],
                 names: Sequence[str]) -> list[torch.Tensor | None] | None:
    """The style guides times the style images' alphas (0 where fully transparent, 1 elsewhere)."""
    if not any(a is not None for a in alphas):
        return guides
    out: list[torch.Tensor | None] = []
    for i, (g, a) in enumerate(zip(guides or [None] * len(alphas), alphas)):
        seen = (a > 0.5 / 255).float() if a is not None else None
        both = seen if g is None else (g if seen is None else g * seen)
        if both is not None and _share(both) < MIN_SHARE:
            raise ImageError(f"style image {i + 1} ({names[i]}): nothing of it is left to take the style from "
                             "(transparent all over, or where its style mask marks it)")
        out.append(both)
    return out


def _guides(cfgs: Sequence[StyleConfig], regions: Sequence[torch.Tensor | None],
            keeps: Sequence[torch.Tensor | None], n_styles: int, size: tuple[int, int],
            device: torch.device, opaque: torch.Tensor | None = None) -> Guides | None:
    ones = opaque if opaque is not None else torch.ones(1, 1, *size, device=device)  # where the losses look
    free = [(1 - k) * ones if k is not None else ones for k in keeps]  # where style may go, per run
    content = torch.cat([(1 + (KEEP_CONTENT - 1) * k) * ones if k is not None else ones for k in keeps]) \
        if any(k is not None for k in keeps) or opaque is not None else None
    rule = cfgs[0].mask_rule
    if all(m is None for m in regions):
        if content is None:
            return None
        return Guides([Region(torch.cat(free))], content, rule)  # the kept areas only: one region, each run's blend
    out = []
    for r in range(n_styles):
        guide, blends, weights = [], [], []
        for c, m, f in zip(cfgs, regions, free):
            b = list(c.style_blend) if c.style_blend is not None else [1.0] * n_styles
            if m is None:  # this run has no masks: the whole image in every region, its own blend, 1/S each
                guide.append(f)
                blends.append(tuple(b))
                weights.append(1.0 / n_styles)
            else:  # this region is style r's alone; the blend weighs the regions' strengths
                guide.append(m[r:r + 1] * f)
                blends.append(tuple(1.0 if s == r else 0.0 for s in range(n_styles)))
                weights.append(n_styles * b[r] / sum(b))
        out.append(Region(torch.cat(guide), blends, tuple(weights)))
    return Guides(out, content, rule)


def _is_setting(value: Any) -> bool:
    """Paths or URLs (what a config records) rather than images handed over in memory."""
    if isinstance(value, (list, tuple)):
        return all(v is None or isinstance(v, (str, os.PathLike)) for v in value)
    return value is None or isinstance(value, (str, os.PathLike))


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``stylize``'s keywords → (config overrides, masks given as images): ``masks=["sky.png", ...]`` is a setting
    (recorded in the recipe, repeatable); ``masks=[pil_image, ...]`` (or tensors, bytes) goes to the run as images."""
    images = {k: overrides[k] for k in MASK_FIELDS if k in overrides and not _is_setting(overrides[k])}
    return {k: v for k, v in overrides.items() if k not in images}, images
