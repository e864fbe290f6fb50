"""A tensor given as an image (the Python API) → an RGB PIL image, refused with an ImageError rather than guessed at.

Accepted: float tensors in [0, 1] (a little outside, as resampling leaves, is clamped) and uint8 tensors in 0-255
(``torchvision.io.read_image``'s output; uint16 in 0-65535 too), shaped (3, H, W), (1, 3, H, W), (1, H, W) or
(H, W) (grey) and (4, H, W) (RGBA, composited over white like an RGBA file). Refused, each with the fix in its
message: NaN or Inf values, values far outside [0, 1] (0-255 floats, ImageNet-normalised tensors), batches of more
than one image, channels-last (H, W, 3), other integer and complex types, tensors without data, and images smaller
than 8 px a side.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import ImageError

MIN_SIDE = 8
SLACK = 0.1  # how far outside [0, 1] a float tensor may stray (resampling overshoot) before it is refused
_UINT16 = getattr(torch, "uint16", None)  # torch >= 2.3


def tensor_image(t: torch.Tensor, name: str) -> Image.Image:
    """A tensor → RGB PIL image (see the module's docstring for what is accepted)."""
    if t.is_meta or t.numel() == 0:
        raise ImageError(f"{name}: the tensor holds no pixels (shape {tuple(t.shape)}); give a (3, H, W) image")
    x = _chw(t, name)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif _UINT16 is not None and x.dtype == _UINT16:
        x = x.to(torch.int32).float() / 65535.0
    elif x.dtype == torch.bool or x.is_complex() or not x.is_floating_point():
        raise ImageError(f"{name}: tensors of dtype {str(x.dtype).removeprefix('torch.')} are not images; give floats "
                         "in [0, 1] or uint8 in 0-255 (torchvision.io.read_image's output)")
    x = x.detach().to("cpu", torch.float32)
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise ImageError(f"{name}: the tensor has {bad:,} NaN or infinite values; give finite pixel values in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < -SLACK or hi > 1 + SLACK:
        hint = "divide by 255" if hi > 2 and lo >= -SLACK else "undo the normalisation (x * std + mean)"
        raise ImageError(f"{name}: the tensor's values run from {lo:.3g} to {hi:.3g}, but images are floats in "
                         f"[0, 1]; {hint}, or pass uint8")
    if min(x.shape[-2:]) < MIN_SIDE:
        raise ImageError(f"{name}: {x.shape[-1]}x{x.shape[-2]} pixels is too small; use at least {MIN_SIDE} px a side")
    arr = (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)  # (H, W, C)
    if arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0], "L").convert("RGB")
    if arr.shape[2] == 4:
        background = Image.new("RGBA", (arr.shape[1], arr.shape[0]), (255, 255, 255, 255))
        return Image.alpha_composite(background, Image.fromarray(arr, "RGBA")).convert("RGB")
    return Image.fromarray(arr, "RGB")


def _chw(t: torch.Tensor, name: str) -> torch.Tensor:
    """(C, H, W) with C in 1, 3, 4, from the shapes people pass."""
    shape = tuple(t.shape)
    if t.dim() == 4:
        if shape[0] != 1:
            raise ImageError(f"{name}: a batch of {shape[0]} images (shape {shape}); pass one image, t[i]")
        t = t[0]
    elif t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ImageError(f"{name}: expected a (3, H, W) image tensor, got shape {shape}")
    if t.shape[0] not in (1, 3, 4):
        hint = "; it looks channels-last: pass t.permute(2, 0, 1)" if t.shape[-1] in (1, 3, 4) else ""
        raise ImageError(f"{name}: expected a (3, H, W) image tensor, got shape {shape}{hint}")
    return t
