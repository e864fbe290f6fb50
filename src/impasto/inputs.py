"""Input preparation for a batch: images loaded, sized for the run and turned into the engine's tensors, with the
colour-control transforms on either side of the engine."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from .config import StyleConfig
from .core import colour
from .core.guides import resize_guide
from .core.objective import Guides
from .core.targets import resize, style_size
from .errors import ConfigError, ImageError
from .io.fetch import is_url
from .io.images import LoadedImage, load_image, pil_to_tensor, resize_exact
from .masks import MIN_SHARE, prepare_masks
from .outputs import cover_box, parse_colour

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | torch.Tensor | bytes | LoadedImage
SINGLE = (str, os.PathLike, Image.Image, torch.Tensor, bytes, LoadedImage)
MAX_SIDE = 16384  # the largest side a config may ask for (config._check_sizes)


def style_list(styles: Sequence[ImageLike] | ImageLike) -> list[ImageLike]:
    """One style or several → a list (a path, an image or a tensor is one style)."""
    return [styles] if isinstance(styles, SINGLE) else list(styles)


def recorded_name(source: ImageLike, loaded: LoadedImage) -> str:
    """An input's name for the recipe: a local file as an absolute path, so that ``impasto recipe``'s command runs
    from any folder (issue 28); a URL or an in-memory image keeps the name it was loaded with."""
    if isinstance(source, (str, os.PathLike)) and not is_url(os.fspath(source)):
        return os.path.abspath(os.fspath(source))
    return loaded.name


def final_size(content: Image.Image, cfg: StyleConfig) -> tuple[int, int]:
    """The result's (h, w) for this content (``StyleConfig.result_size``).

    ``size_side = 'short'`` sets the short side as the classic exercise's ``transforms.Resize(400)`` did. Its
    ``load_image`` passed ``max(image.size)`` instead of 400 when the image's long side was at most 400, so a small
    image's short side became its long side (a 300×200 photo came out 450×300): not reproduced, ``size`` is the
    result's size for every photo here (the report's photos were all larger than 400 px)."""
    h, w = cfg.result_size(content.height, content.width)
    if max(h, w) > MAX_SIDE:
        raise ConfigError(f"size = {cfg.size} on the short side makes the result {w}x{h} pixels for this photo, "
                          f"over {MAX_SIDE} on its long side; use a smaller --size", key="size")
    return h, w


def fingerprint(*images: Image.Image) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(f"{im.size}".encode())
        h.update(im.tobytes())
    return h.hexdigest()[:16]


@dataclass
class Prepared:
    """Inputs loaded and resized for a batch: what the engine needs, plus names for the recipe."""

    content: torch.Tensor  # (1, 3, H, W) at the final size; luminance-only when preserve_color="luminance"
    content_rgb: torch.Tensor
    styles: list[torch.Tensor]
    inits: list[torch.Tensor | None]
    names: dict[str, Any]
    fingerprint: str
    notes: list[str]
    guides: Guides | None = None  # masks (impasto/masks.py): regions and a content guide, at the final size
    keeps: list[torch.Tensor | None] = field(default_factory=list)  # per run: the photo composited over the result
    style_guides: list[torch.Tensor | None] | None = None  # per style image: the part of it to take the style from
    palette: tuple[torch.Tensor, torch.Tensor] | None = None  # preserve_color="palette": the styles' chroma stats
    content_fingerprint: str = ""  # the photo at the result's size alone: what ``impasto blend`` checks it against
    alpha: torch.Tensor | None = None  # (1, 1, H, W) in [0, 1]: the photo's alpha at the final size, for the result


def _check_blends(cfgs: Sequence[StyleConfig], n_styles: int) -> None:
    for c in cfgs:
        if c.style_blend is not None and len(c.style_blend) != n_styles:
            raise ConfigError(
                f"style_blend = {','.join(map(str, c.style_blend))} has {len(c.style_blend)} weights for "
                f"{n_styles} style image(s); give one weight per style image", key="style_blend")


def prepare(content: ImageLike, styles: Sequence[ImageLike] | ImageLike, cfgs: Sequence[StyleConfig],
            device: torch.device, masks: Mapping[str, Any] | None = None) -> Prepared:
    """Load and size the inputs for a batch. ``masks``: mask images handed over in memory (``masks``,
    ``mask_colors``, ``keep_mask``, ``style_masks``), for every run, instead of the configs' paths."""
    c0 = cfgs[0]
    styles = style_list(styles)
    if not styles:
        raise ConfigError("give at least one style image", key="styles")
    _check_blends(cfgs, len(styles))
    c_img = load_image(content, max_pixels=c0.max_pixels)
    s_imgs = [load_image(s, max_pixels=c0.max_pixels) for s in styles]
    c_img, (h, w), box = run_photo(c_img, c0)
    content_pil = resize_exact(c_img.image, h, w)
    style_pils = [resize_exact(s.image, *style_size((s.image.height, s.image.width), (h, w), c0.style_scale,
                                                    c0.style_fit, c0.size_side, least=8)) for s in s_imgs]
    content_t = pil_to_tensor(content_pil).to(device)
    style_ts = [pil_to_tensor(s).to(device) for s in style_pils]
    alpha = _alpha(c_img, (h, w), device)
    style_alphas = [_alpha(s, tuple(t.shape[-2:]), device) for s, t in zip(s_imgs, style_ts)]
    inits: list[torch.Tensor | None] = []
    for c in cfgs:
        if c.init in ("content", "noise", "gaussian"):
            inits.append(None)
        else:
            init_img = load_image(c.init, max_pixels=c.max_pixels).image
            inits.append(pil_to_tensor(resize_exact(init_img, h, w)).to(device))
    engine_content = content_t
    if c0.preserve_color == "luminance":
        engine_content = colour.luminance(content_t)
        style_ts = [colour.match_luminance(colour.luminance(s), engine_content) for s in style_ts]
        inits = [colour.luminance(i) if i is not None else None for i in inits]
    names = {"content": recorded_name(content, c_img), "styles": [recorded_name(s, i) for s, i in zip(styles, s_imgs)]}
    notes = c_img.notes + [n for s in s_imgs for n in s.notes]
    m = prepare_masks(cfgs, (h, w), [s.name for s in s_imgs], [tuple(s.shape[-2:]) for s in style_ts],  # type: ignore[misc]
                      device, masks, opaque=_opaque(alpha, c_img.name), style_alphas=style_alphas, box=box)
    palette = colour.chroma_stats(style_ts) if c0.preserve_color == "palette" else None
    alpha_pil = [resize_exact(c_img.alpha, h, w)] if c_img.alpha is not None else []
    return Prepared(engine_content, content_t, style_ts, inits, {**names, **m.names},
                    fingerprint(content_pil, *style_pils, *alpha_pil), notes + m.notes, m.guides, m.keeps,
                    m.style_guides, palette, fingerprint(content_pil), alpha)


def run_photo(loaded: LoadedImage, cfg: StyleConfig) -> tuple[LoadedImage, tuple[int, int],
                                                                tuple[float, float, float, float]]:
    """The photo as a run takes it: cropped to a print's proportions (centred), the result's (h, w), and the crop's
    box (fractions). ``prepare`` and ``impasto blend`` (reblend.py) both size the photo through here."""
    h, w = final_size(loaded.image, cfg)
    box = cover_box(*loaded.image.size, (h, w)) if cfg.print_size is not None else (0.0, 0.0, 1.0, 1.0)
    return _cropped(loaded, box), (h, w), box


def _cropped(loaded: LoadedImage, box: tuple[float, float, float, float]) -> LoadedImage:
    """The centred part of the photo a print keeps (``outputs.cover_box``), with a note saying what was cut."""
    if box == (0.0, 0.0, 1.0, 1.0):
        return loaded
    w, h = loaded.image.size
    px = (round(box[0] * w), round(box[1] * h), round(box[2] * w), round(box[3] * h))
    cut = f"{w - (px[2] - px[0])} px of its width" if px[2] - px[0] < w else f"{h - (px[3] - px[1])} px of its height"
    note = f"{loaded.name}: cropped to the print's proportions (centred; {cut} cut)"
    alpha = loaded.alpha.crop(px) if loaded.alpha is not None else None
    return LoadedImage(loaded.image.crop(px), loaded.name, [*loaded.notes, note], alpha)


def _alpha(loaded: LoadedImage, size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
    """An image's alpha channel at ``size`` (h, w) as (1, 1, h, w) in [0, 1], or None when it is opaque."""
    if loaded.alpha is None:
        return None
    return pil_to_tensor(resize_exact(loaded.alpha, *size).convert("RGB"))[:, :1].to(device)


def _opaque(alpha: torch.Tensor | None, name: str) -> torch.Tensor | None:
    """Where the photo is not fully transparent (1) — the only pixels the losses see — or None without alpha."""
    if alpha is None:
        return None
    opaque = (alpha > 0.5 / 255).float()
    if float(opaque.mean()) < MIN_SHARE:
        raise ImageError(f"{name}: is transparent all over; give a photo with something visible in it")
    return opaque


def style_transform(cfg: StyleConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    if cfg.preserve_color == "histogram":
        return colour.match_histogram  # the style takes the content's colour statistics, at every scale
    return None


def postprocess(cfg: StyleConfig, img: torch.Tensor, content_rgb: torch.Tensor,
                keep: torch.Tensor | None = None, palette: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor:
    """Engine output (3|1×3, h, w) → final RGB (3, h, w). Luminance-only transfer puts the content's chroma back,
    taken from the content resized to the image: at a coarse scale (a preview, a snapshot, a stop) the image is
    smaller than the final size. ``palette`` (the styles' chroma statistics): the photo's colours carried into the
    painting's palette (``preserve_color = "palette"``). A ``keep`` mask (1, 1, H, W; feathered) composites the photo
    over the result; last, ``strength`` below 1 blends the photo back in."""
    batch = img.unsqueeze(0) if img.dim() == 3 else img
    size: tuple[int, int] = tuple(batch.shape[-2:])  # type: ignore[assignment]
    if cfg.preserve_color == "luminance":
        batch = colour.with_chroma_of(batch, resize(content_rgb, size))
    if cfg.preserve_color == "palette" and palette is not None:  # the photo's colour layout, the styles' palette
        batch = colour.in_palette(batch, resize(content_rgb, size), palette)
    if keep is not None:
        k = resize_guide(keep, size).to(batch)
        batch = k * resize(content_rgb, size).to(batch) + (1 - k) * batch
    if cfg.strength < 1:  # the photo blended back in, in OKLab (core/colour.py says why); 1: the result as it is
        batch = colour.blend_strength(resize(content_rgb, size), batch, cfg.strength)
    return batch[0]


def finish(cfg: StyleConfig, rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """The final RGB (3, h, w) → what is written, still float: with the photo's ``alpha`` (1, 1, H, W) as a fourth
    channel (4, h, w), or flattened onto ``cfg.background`` (3, h, w); the RGB alone for an opaque photo."""
    if alpha is None:
        return rgb
    a = resize_guide(alpha, tuple(rgb.shape[-2:])).to(rgb)[0].clamp(0, 1)  # (1, h, w)
    if cfg.background is None:
        return torch.cat([rgb, a])
    bg = torch.tensor(parse_colour(cfg.background), dtype=rgb.dtype, device=rgb.device).view(3, 1, 1) / 255
    return rgb * a + bg * (1 - a)
