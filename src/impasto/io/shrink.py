"""Decoding at reduced size: an upload is decoded no larger than its use needs (``impasto serve``'s images).

A 5000×5000 upload painted at 512 px needs a 1024 px decode, not 25 M pixels: JPEG is decoded at 1/2, 1/4 or 1/8
scale by libjpeg itself (Pillow's ``draft``, before any pixel is decoded), and other formats are box-reduced by an
integer factor right after decoding (``Image.reduce``), before the copies that EXIF rotation and the RGB conversion
make. What is kept is at least ``GAP`` times the pixels the final Lanczos resize needs per side: Pillow's own
``reducing_gap`` advice, under which the result cannot be told from a resize of the whole image.

``keep`` is a long side in pixels (what ``size`` and ``style_scale`` ask for) or an exact ``(height, width)`` (what
``shape`` asks for, where either side may end up the long one after EXIF rotation).
"""

from __future__ import annotations

from PIL import Image

GAP = 2  # keep at least this many decoded pixels per result pixel, per side
Keep = int | tuple[int, int]
_REDUCIBLE = ("L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F", "PA", "LAB", "HSV")


def factor(size: tuple[int, int], keep: Keep) -> int:
    """The largest integer factor an image of ``size`` (w, h) can shrink by and still serve ``keep``."""
    w, h = size
    if isinstance(keep, int):
        f = max(w, h) // (GAP * max(1, keep))
    else:
        kh, kw = (max(1, k) for k in keep)
        # Either orientation: EXIF rotation may swap the sides after decoding.
        f = min(min(w // (GAP * kw), h // (GAP * kh)), min(w // (GAP * kh), h // (GAP * kw)))
    return max(1, f)


def draft(im: Image.Image, keep: Keep) -> None:
    """Ask a JPEG to decode at the smallest DCT scale (1/2, 1/4, 1/8) that still serves ``keep`` (before ``load``)."""
    f = factor(im.size, keep)
    if f > 1 and im.format == "JPEG":
        w, h = im.size
        im.draft(None, (max(1, w // f), max(1, h // f)))  # libjpeg picks a scale at least this large


def reduce(im: Image.Image, keep: Keep) -> Image.Image:
    """A decoded image box-reduced by the largest integer factor that still serves ``keep`` (itself if none)."""
    f = factor(im.size, keep)
    if f == 1:
        return im
    if im.mode not in _REDUCIBLE:  # 1-bit, palette, 16-bit: into a mode Image.reduce takes (to_rgb does the rest)
        target = "L" if im.mode == "1" else "I" if im.mode.startswith("I;16") else \
            "RGBA" if "transparency" in im.info or im.mode == "P" and im.palette and im.palette.mode == "RGBA" else "RGB"
        im = im.convert(target)
    return im.reduce(f)
