"""Checks made before a run starts, so that it is refused with one line rather than killed part way: memory, and
sizes that VGG cannot take."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .config import StyleConfig
from .core.memory import WEIGHT_BYTES, estimate_bytes
from .core.schedule import scale_sizes
from .core.targets import style_size
from .core.vgg import LAYER_NAMES
from .errors import ConfigError, ImageError, ResourceError
from .runtime import available_memory

TILE_CHOICES = (2048, 1536, 1024, 768, 512)  # the largest that fits is chosen (fewer tiles: less halo work)


def _need(cfgs: Sequence[StyleConfig], size: tuple[int, int], tile: int) -> int:
    c = cfgs[0]
    layers = sorted({*c.content_layers, *(n for n, _ in c.style_layers)})
    return estimate_bytes(*size, layers, batch=len(cfgs), lbfgs_history=100 if c.optimizer == "lbfgs" else 0,
                          tile=tile, checkpoint=c.checkpoint, padding=c.padding)


def pick_tiles(cfgs: Sequence[StyleConfig], size: tuple[int, int], device: torch.device
               ) -> tuple[list[StyleConfig], str | None]:
    """For a print (``print_size``) without ``tile_size``: the configs with the largest tile size that fits the
    device's free memory when the whole image does not, and a line saying what was decided (None when there is
    nothing to decide: no print, tiles already chosen, or the free memory unknown). When no tile size fits,
    ``check_memory`` refuses the run with its own line."""
    c = cfgs[0]
    have = available_memory(device)
    if c.print_size is None or c.tile_size or have is None:
        return list(cfgs), None
    gib = lambda n: f"{n / 2**30:.1f} GiB"
    whole = _need(cfgs, size, 0)
    where = f"the {size[1]}x{size[0]} px print"
    if whole <= 0.9 * have:
        return list(cfgs), f"{where} fits in {device.type} memory whole (about {gib(whole)} of {gib(have)} free)"
    for tile in TILE_CHOICES:
        need = _need(cfgs, size, tile)
        if tile < max(size) and need <= 0.9 * have:
            return [x.replace(tile_size=tile) for x in cfgs], (
                f"{where} needs about {gib(whole)} whole but {device.type} has {gib(have)} free: painting it in "
                f"{tile} px tiles (about {gib(need)}; --tile-size {tile})")
    return list(cfgs), None


def check_memory(cfgs: Sequence[StyleConfig], size: tuple[int, int], device: torch.device,
                 style_sizes: Sequence[tuple[int, int]] = ()) -> int:
    """The estimated peak bytes of a batch's step; a ResourceError (with a size that fits) when it would not fit."""
    c = cfgs[0]
    need = _need(cfgs, size, c.tile_size)
    have = available_memory(device)
    if have is not None and need > 0.9 * have:
        scale = (0.9 * have / need) ** 0.5
        suggestion = max(64, int((max(size) if c.size_side == "long" else min(size)) * scale) // 16 * 16)
        tiles = " or --tile-size 1024" if not c.tile_size and max(size) > 1024 else ""
        raise ResourceError(
            f"a {size[1]}x{size[0]} run needs about {need / 2**30:.1f} GiB but {device.type} has "
            f"{have / 2**30:.1f} GiB free; use --size {suggestion}{tiles} or fewer/shallower style layers"
        )
    for sh, sw in style_sizes:  # the style targets' forward pass (no autograd: two full-size activations at once)
        if c.tile_size:
            sh, sw = min(sh, c.tile_size + 192), min(sw, c.tile_size + 192)
        style_need = int(2 * 64 * sh * sw * 4 * 1.3) + WEIGHT_BYTES
        if have is not None and style_need > 0.9 * have:
            raise ResourceError(
                f"the style image at {sw}x{sh} needs about {style_need / 2**30:.1f} GiB but {device.type} has "
                f"{have / 2**30:.1f} GiB free; use a smaller --style-scale or --size"
            )
    return need


def check_sizes(cfgs: Sequence[StyleConfig], content: torch.Tensor, styles: Sequence[torch.Tensor],
                names: dict) -> None:
    """Refuse sizes VGG cannot take: each pooling halves the image, so the deepest layer used needs at least
    2**(poolings before it) pixels a side, at every scale and for every style image (elongated images hit this)."""
    c0 = cfgs[0]
    used = {n for c in cfgs for n in (*(c.content_layers if c.content_weight > 0 else ()), *dict(c.style_layers))}
    deepest = max(used, key=LAYER_NAMES.index)
    need = 2 ** sum(n.startswith("pool") for n in LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1])
    hint = f"{deepest} needs at least {need} px a side"
    h, w = content.shape[-2:]
    if min(h, w) < need:
        raise ConfigError(f"{names['content']} becomes {w}x{h} pixels at size {c0.size} and {hint}; "
                          "use a larger --size (or --shape), or shallower layers", key="size")
    first = scale_sizes((h, w), c0.start_size, c0.scale_factor, c0.size_side)[0]
    if min(first) < need:
        raise ConfigError(f"the first scale (start_size {c0.start_size}) is {first[1]}x{first[0]} pixels and {hint}; "
                          "raise --start-size or use --start-size none", key="start_size")
    for name, style in zip(names["styles"], styles):
        sh, sw = style.shape[-2:]
        fh, fw = style_size(style, first, c0.style_scale, c0.style_fit, c0.size_side)  # as the engine sizes it there
        if min(sh, sw, fh, fw) < need:
            raise ImageError(f"{name}: becomes {min(sw, fw)}x{min(sh, fh)} pixels as a style and {hint}; use a less "
                             "elongated style image, a larger --style-scale or --start-size none")
