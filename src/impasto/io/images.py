"""Loading images: a path, an http(s) URL, bytes, a PIL image or a tensor → RGB; PIL ↔ tensor; resizing.

EXIF orientation is honoured; an embedded colour profile converts the pixels to sRGB first (``profiles``); grey,
palette, CMYK, 16-bit and alpha images are converted to RGB. Transparent areas are composited over white (what a
viewer shows on a page), not dropped to black, and a non-opaque alpha channel is kept beside the RGB
(``LoadedImage.alpha``) for the result to carry. Animated GIF/WebP/PNG: the first
frame is used (``load_image`` reports it in ``notes``). A file whose declared size exceeds ``max_pixels`` is refused
before it is decoded. URLs are fetched by ``fetch``; saving is ``recipe.save_image``, on ``files``' atomic writes.
"""

from __future__ import annotations

import io
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from . import profiles, shrink
from .fetch import is_url, read_url
from .files import check_input, os_reason
from .tensors import tensor_image

MIN_SIDE = 8
_PIXEL_LIMIT_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-wide: one loader at a time
# Pillow refuses a PNG whose colour profile or text decompresses past PngImagePlugin.MAX_TEXT_CHUNK (1 MB), or past
# MAX_TEXT_MEMORY (64 MB) in all: a guard against zip bombs in metadata, which impasto does not use. Such a file is
# read again without those chunks (when it is under this size) rather than called broken.
_METADATA_LIMIT = re.compile(r"MAX_TEXT_CHUNK|MAX_TEXT_MEMORY")
_MAX_RETRY_BYTES = 512 * 2**20


@dataclass
class LoadedImage:
    image: Image.Image  # RGB, transparent parts over white
    name: str
    notes: list[str] = field(default_factory=list)
    alpha: Image.Image | None = None  # "L", the image's alpha channel when it has one that is not all opaque

    def named(self, name: str) -> LoadedImage:
        """The same image (and alpha) under another name: the one the recipe records."""
        return LoadedImage(self.image, name, list(self.notes), self.alpha)

    def with_alpha(self) -> Image.Image:
        """The image as stored for a re-read: RGBA with its alpha, or RGB when it is opaque."""
        if self.alpha is None:
            return self.image
        rgba = self.image.copy()
        rgba.putalpha(self.alpha)
        return rgba


def _open(source: str | os.PathLike[str] | bytes, name: str, max_pixels: int,
          keep: shrink.Keep | None = None) -> LoadedImage:
    fp = _readable(source, name)
    try:
        try:
            rgb, alpha, notes = _open_decode(fp, name, max_pixels, keep)
        except ValueError as e:  # Pillow's cap on decompressed PNG metadata (1 MB a chunk, 64 MB in all)?
            lean = _without_metadata(fp) if _METADATA_LIMIT.search(str(e)) else None
            if lean is None:
                raise
            rgb, alpha, notes = _open_decode(io.BytesIO(lean), name, max_pixels, keep)
            notes.append(f"{name}: its metadata (a colour profile or text) is larger than Pillow reads "
                         "(over 1 MB decompressed); ignored it and took the image as sRGB")
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read (use PNG, JPEG, WebP, GIF, BMP or TIFF)") from None
    except MemoryError:
        raise ImageError(f"{name}: too large to decode in the memory available; shrink it first") from None
    except OSError as e:
        if e.errno is None:  # Pillow's own OSErrors (a truncated file) carry no errno
            raise ImageError(f"{name}: broken or truncated image ({_first_line(e)}); re-export or re-download it") \
                from None
        raise ImageError(f"{name}: cannot be read ({os_reason(e)})") from None
    except Exception as e:  # a malformed file makes decoders raise anything; it is bad input, not a bug
        raise ImageError(f"{name}: broken or truncated image ({_first_line(e)}); re-export or re-download it") \
            from None
    if min(rgb.size) < MIN_SIDE:
        raise ImageError(f"{name}: {rgb.size[0]}x{rgb.size[1]} pixels is too small; use at least {MIN_SIDE} px a side")
    return LoadedImage(rgb, name, notes, alpha)


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _open_decode(fp: Any, name: str, max_pixels: int,
                 keep: shrink.Keep | None = None) -> tuple[Image.Image, Image.Image | None, list[str]]:
    with warnings.catch_warnings():
        # Pillow's warnings about a user's file (corrupt EXIF, transparency in a palette, the size) are noise
        # here: what matters is raised, and caught in _open.
        warnings.simplefilter("ignore")
        if isinstance(fp, io.BytesIO):
            fp.seek(0)
        with _open_unlimited(fp) as im:  # closes the file (a GIF keeps it open for its other frames)
            return _decode(im, name, max_pixels, keep)


def _without_metadata(fp: Any) -> bytes | None:
    """A PNG's bytes without its colour profile and text chunks (iCCP, tEXt, zTXt, iTXt); None if not a PNG."""
    if isinstance(fp, io.BytesIO):
        data = fp.getvalue()
    else:
        if os.path.getsize(fp) > _MAX_RETRY_BYTES:
            return None
        data = Path(fp).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    out, pos = [data[:8]], 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        end = pos + 12 + length
        if data[pos + 4:pos + 8] not in (b"iCCP", b"tEXt", b"zTXt", b"iTXt"):
            out.append(data[pos:end])
        pos = end
    return b"".join(out)


def _readable(source: str | os.PathLike[str] | bytes, name: str) -> Any:
    """Bytes as a file object, or a path checked to be a non-empty regular file; an ImageError naming the problem
    if not (a FIFO, a device, a symlink loop, a folder: each in its own words, never opened)."""
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{name}: no data (0 bytes)")
        return io.BytesIO(source)
    check_input(source, name)  # the CLI runs the same check before it imports torch
    return Path(source)


def _open_unlimited(fp: Any) -> Image.Image:
    """``Image.open`` (the header only) with Pillow's pixel limit lifted: ``_decode`` applies ours, with our message."""
    with _PIXEL_LIMIT_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(fp)
        finally:
            Image.MAX_IMAGE_PIXELS = old


class Header(NamedTuple):
    """What an image file declares before any pixel is decoded."""

    width: int
    height: int
    format: str  # Pillow's name: PNG, JPEG, WEBP, ...
    mode: str  # as stored: RGB, RGBA, P, I;16, ...


def read_header(fp: Any) -> Header | None:
    """The header of an open binary file's image, read without decoding a pixel (the file's position is put back);
    None if Pillow does not know it as an image."""
    pos = fp.tell()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open_unlimited(fp) as im:  # a file object given to Image.open is not closed with the image
                return Header(im.width, im.height, str(im.format), im.mode)
    except Exception:  # not an image, or a broken header: decoding will say which, in its own words
        return None
    finally:
        fp.seek(pos)


def _decode(im: Image.Image, name: str, max_pixels: int,
            keep: shrink.Keep | None = None) -> tuple[Image.Image, Image.Image | None, list[str]]:
    """An opened image → its first frame, upright, in sRGB, its alpha (or None) and notes on what was done to it;
    with ``keep``, no larger than that needs (``shrink``)."""
    notes: list[str] = []
    w, h = im.size
    if w * h > max_pixels:  # refused from the header alone, before a single pixel is decoded
        raise ImageError(
            f"{name}: declares {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}; "
            "shrink it first or raise the limit with --max-pixels"
        )
    frames = getattr(im, "n_frames", 1)  # only multi-frame formats' plugins define it
    if getattr(im, "is_animated", False) or frames > 1:
        notes.append(f"{name}: has {frames} frames (animated or multi-page); using the first frame")
        im.seek(0)
    if keep is not None:
        shrink.draft(im, keep)  # a JPEG decodes at 1/2, 1/4 or 1/8 scale when that is still enough
    im.load()
    try:
        if keep is not None:  # upright in place, then reduced: no full-size copy is made
            ImageOps.exif_transpose(im, in_place=True)
        upright = shrink.reduce(im, keep) if keep is not None else ImageOps.exif_transpose(im)
    except Exception:  # a damaged EXIF block should not cost the picture
        notes.append(f"{name}: its EXIF orientation could not be read; using the image as stored")
        upright = shrink.reduce(im, keep) if keep is not None else im
    upright = profiles.to_srgb(upright, name, notes)
    try:
        return to_rgb(upright), alpha_of(upright), notes
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None


def alpha_of(im: Image.Image) -> Image.Image | None:
    """The alpha channel ("L") of an image that has one and is not opaque everywhere; None otherwise."""
    if im.mode == "P":
        if "transparency" not in im.info and not (im.palette is not None and im.palette.mode == "RGBA"):
            return None
    elif im.mode not in ("RGBA", "LA", "PA", "La", "RGBa"):
        return None
    alpha = (im if im.mode in ("RGBA", "LA") else im.convert("RGBA")).getchannel("A")
    return None if alpha.getextrema() == (255, 255) else alpha


def to_rgb(im: Image.Image) -> Image.Image:
    """Any mode → RGB. 16-bit greys are scaled to 8 bits; alpha is composited over white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        # I;16 is always 0..65535 (a dark 16-bit picture is still 16-bit); "I" may hold 8- or 16-bit data.
        top = 65535.0 if im.mode != "I" or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        im = Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1 else 1.0), 0, 255).astype(np.uint8), "L")
    if im.mode == "P":  # through RGBA only when the palette has transparency (a full-size copy fewer otherwise)
        opaque = "transparency" not in im.info and not (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGB" if opaque else "RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im if im.mode == "RGBA" else im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:  # e.g. LAB or HSV TIFFs: Pillow has no conversion to RGB
        raise ImageError(f"colour mode {im.mode} is not supported; convert the image to RGB first") from None


def load_image(source: Any, *, max_pixels: int = 40_000_000, name: str | None = None,
               keep: shrink.Keep | None = None) -> LoadedImage:
    """A path, URL, bytes, PIL image or tensor (3, H, W)/(1, 3, H, W) in [0, 1] (or uint8) → RGB PIL image.

    ``keep`` (a long side, or an exact (height, width)) lets a file be decoded at reduced size (``shrink``).
    """
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, Image.Image):
        label = name or "<PIL image>"
        notes: list[str] = []
        rgb, alpha = _from_pil(source, label, notes)
        return LoadedImage(rgb, label, notes, alpha)
    if isinstance(source, torch.Tensor):
        return LoadedImage(tensor_image(source, name or "<tensor>"), name or "<tensor>")
    if isinstance(source, (bytearray, memoryview)):
        source = bytes(source)
    if isinstance(source, bytes):
        return _open(source, name or "<upload>", max_pixels, keep)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if is_url(text):
            return _open(read_url(text), name or text, max_pixels, keep)
        return _open(text, name or text, max_pixels, keep)
    hint = " (a numpy array: PIL.Image.fromarray(a) or torch.from_numpy(a))" if hasattr(source, "__array__") else ""
    raise ImageError(f"cannot use a {type(source).__name__} as an image{hint}; give a path, URL, PIL image or tensor")


def _from_pil(im: Image.Image, name: str, notes: list[str]) -> tuple[Image.Image, Image.Image | None]:
    """A caller's PIL image → an upright sRGB copy (never changed in place) and its alpha, or an ImageError naming the
    problem."""
    try:
        upright = profiles.to_srgb(ImageOps.exif_transpose(im), name, notes)
        rgb, alpha = to_rgb(upright), alpha_of(upright)
    except ImageError as e:
        raise ImageError(f"{name}: {e}") from None
    except (ValueError, OSError) as e:  # closed (Image.close(), or a `with Image.open(...)` block that has ended)
        raise ImageError(f"{name}: the PIL image cannot be read ({_first_line(e)}); pass it before closing it, "
                         "or pass im.copy()") from None
    if min(rgb.size) < MIN_SIDE:
        raise ImageError(f"{name}: {rgb.size[0]}x{rgb.size[1]} pixels is too small; use at least {MIN_SIDE} px a side")
    return rgb, alpha


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL → (1, 3, H, W) float32 in [0, 1]."""
    arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) in [0, 1] → RGB PIL (rounded, not truncated)."""
    t = t.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ImageError(f"expected a (3, H, W) image tensor, got shape {tuple(t.shape)}")
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def resize_long(im: Image.Image, long_side: int) -> Image.Image:
    """Resize so the long side is exactly ``long_side`` (Lanczos; up or down)."""
    w, h = im.size
    s = long_side / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)


def resize_exact(im: Image.Image, height: int, width: int) -> Image.Image:
    return im if im.size == (width, height) else im.resize((width, height), Image.Resampling.LANCZOS)
