"""Writing a picture: PNG and TIFF (8 or 16 bits a channel), WebP and JPEG (8 bits), with transparency where the
format holds it (PNG, TIFF, WebP), the sRGB profile, a print's DPI, and the run's recipe wherever the format has a
place for it (PNG: an ``impasto`` iTXt chunk; TIFF, WebP and JPEG: XMP, ``xmp.packet``). ``recipe.read_recipe``
reads all four back.

A picture is a float array (H, W, 3|4) in [0, 1] (the engine's result, quantised here, once) or an 8-bit PIL image
(snapshots, sheets, uploads). Pillow writes what it can (8-bit PNG, WebP, JPEG); 16-bit PNG and all TIFFs are
written here from their specifications (Pillow has no 16-bit RGB mode), with numpy and zlib only.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from ..errors import OutputError
from .profiles import srgb_icc
from .xmp import packet

RECIPE_KEY = "impasto"
ALPHA_FORMATS = ("PNG", "TIFF", "WEBP")  # the formats that keep transparency
DEEP_FORMATS = ("PNG", "TIFF")  # the formats that take --bit-depth 16
Picture = Any  # np.ndarray (H, W, 3|4) float in [0, 1], or a PIL image


def recipe_text(recipe: dict[str, Any]) -> str:
    """The recipe as the files carry it: JSON, ASCII only (TIFF's and XMP's text is safest so)."""
    return json.dumps(recipe, sort_keys=True, default=str)


def quantise(pixels: np.ndarray, bits: int) -> np.ndarray:
    """Floats in [0, 1] → uint8 or uint16, rounded to nearest (not truncated)."""
    top = (1 << bits) - 1
    out = np.floor(np.clip(np.nan_to_num(pixels), 0.0, 1.0) * top + 0.5)
    return out.astype(np.uint16 if bits == 16 else np.uint8)


def _array(picture: Picture, bits: int) -> np.ndarray:
    """A picture → (H, W, 3|4) unsigned integers of ``bits`` bits."""
    if isinstance(picture, Image.Image):
        im = picture if picture.mode in ("RGB", "RGBA") else picture.convert(
            "RGBA" if "A" in picture.getbands() else "RGB")
        arr = np.asarray(im)
        return arr if bits == 8 else arr.astype(np.uint16) * 257  # 0-255 → 0-65535 exactly (255 · 257 = 65535)
    return np.ascontiguousarray(quantise(np.asarray(picture, dtype=np.float32), bits))  # a tensor's permuted view


def to_pil(picture: Picture) -> Image.Image:
    """A picture → an 8-bit PIL image (RGB or RGBA)."""
    if isinstance(picture, Image.Image):
        return picture
    arr = _array(picture, 8)
    return Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB")


def encode(picture: Picture, fmt: str, recipe: dict[str, Any] | None = None, *, bit_depth: int = 8,
           dpi: float | None = None) -> bytes:
    """A picture → the bytes of a ``fmt`` file (PNG, TIFF, WEBP, JPEG) at ``bit_depth`` bits a channel."""
    if bit_depth == 16 and fmt not in DEEP_FORMATS:
        raise OutputError(f"{fmt} holds 8 bits a channel; write .png or .tif for 16 bits")
    arr = _array(picture, bit_depth)
    if arr.shape[2] == 4 and fmt not in ALPHA_FORMATS:
        raise OutputError(f"{fmt} cannot hold transparency; write .png, .webp or .tif, or flatten onto --background")
    text = recipe_text(recipe) if recipe is not None else None
    if fmt == "TIFF":
        return tiff(arr, text, dpi)
    if fmt == "PNG" and bit_depth == 16:
        return png16(arr, text, dpi)
    grey = isinstance(picture, Image.Image) and picture.mode == "L"  # masks: stored grey, a third of the size
    im = picture if grey else Image.fromarray(arr, "RGBA" if arr.shape[2] == 4 else "RGB")
    buf = io.BytesIO()
    extra: dict[str, Any] = {"icc_profile": srgb_icc()}
    if dpi is not None and fmt != "WEBP":
        extra["dpi"] = (dpi, dpi)
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if text is not None:
            info.add_itxt(RECIPE_KEY, text, zip=True)
        im.save(buf, "PNG", pnginfo=info, **extra)
    elif fmt == "WEBP":  # WebP has no DPI field of its own: EXIF carries it
        im.save(buf, "WEBP", quality=95, method=4, exact=True, xmp=packet(text) if text is not None else b"",
                exif=_exif_dpi(dpi), **extra)
    else:
        im.save(buf, "JPEG", quality=95, subsampling=0, **extra)
        return _with_jpeg_xmp(buf.getvalue(), packet(text)) if text is not None else buf.getvalue()
    return buf.getvalue()


def _exif_dpi(dpi: float | None) -> bytes:
    if dpi is None:
        return b""
    exif = Image.Exif()
    exif[282], exif[283], exif[296] = dpi, dpi, 2  # XResolution, YResolution, ResolutionUnit: inch
    return exif.tobytes()


def _with_jpeg_xmp(data: bytes, xmp: bytes) -> bytes:
    """A JPEG with an XMP APP1 segment after SOI and its JFIF/EXIF/ICC segments (where readers look for it)."""
    body = b"http://ns.adobe.com/xap/1.0/\0" + xmp
    if len(body) + 2 > 0xFFFF:
        return data  # a recipe over 64 KB (impasto's are a few KB) does not fit one segment: left out
    pos = 2
    while data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:  # APPn segments Pillow wrote
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return data[:pos] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[pos:]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(arr: np.ndarray, text: str | None, dpi: float | None) -> bytes:
    """(H, W, 3|4) uint16 → a 16-bit PNG: IHDR, iCCP (sRGB), pHYs, the recipe's iTXt, IDAT (the Up filter), IEND."""
    h, w, c = arr.shape
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6 if c == 4 else 2, 0, 0, 0)),
           _chunk(b"iCCP", b"sRGB\0\0" + zlib.compress(srgb_icc()))]
    if dpi is not None:
        ppm = round(dpi / 0.0254)
        out.append(_chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1)))
    if text is not None:  # keyword, compressed, method 0, no language, no translated keyword
        out.append(_chunk(b"iTXt", RECIPE_KEY.encode() + b"\0\1\0\0\0" + zlib.compress(text.encode("utf-8"))))
    rows = arr.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    up = rows.copy()
    up[1:] -= rows[:-1]  # the Up filter (type 2), bytewise modulo 256: smooth paintings compress far better
    raw = zlib.compress(np.hstack([np.full((h, 1), 2, np.uint8), up]).tobytes(), 6)
    out += [_chunk(b"IDAT", raw[i:i + 2**23]) for i in range(0, len(raw), 2**23)]
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


# TIFF field types
_SHORT, _LONG, _RATIONAL, _UNDEFINED, _ASCII = 3, 4, 5, 7, 2
_SIZES = {_SHORT: 2, _LONG: 4, _RATIONAL: 8, _UNDEFINED: 1, _ASCII: 1}


def tiff(arr: np.ndarray, text: str | None, dpi: float | None) -> bytes:
    """(H, W, 3|4) uint8 or uint16 → a baseline little-endian TIFF: one Deflate strip with the horizontal predictor,
    unassociated alpha, the sRGB profile (tag 34675), the DPI (inches; none: no absolute unit), the recipe as XMP."""
    h, w, c = arr.shape
    bits = arr.dtype.itemsize * 8
    pred = arr.astype("<u2" if bits == 16 else np.uint8)
    pred[:, 1:] -= arr[:, :-1].astype(pred.dtype)  # horizontal differencing per sample, modulo 2**bits
    data = zlib.compress(pred.tobytes(), 6)
    tags: list[tuple[int, int, Any]] = [
        (256, _LONG, [w]), (257, _LONG, [h]), (258, _SHORT, [bits] * c), (259, _SHORT, [8]), (262, _SHORT, [2]),
        (273, _LONG, [8]), (277, _SHORT, [c]), (278, _LONG, [h]), (279, _LONG, [len(data)]),
        (282, _RATIONAL, [_rational(dpi or 1)]), (283, _RATIONAL, [_rational(dpi or 1)]), (284, _SHORT, [1]),
        (296, _SHORT, [2 if dpi else 1]), (305, _ASCII, "impasto"), (317, _SHORT, [2]),
        (34675, _UNDEFINED, srgb_icc()),
    ]
    if c == 4:
        tags.append((338, _SHORT, [2]))  # ExtraSamples: unassociated alpha
    if text is not None:
        tags.append((700, 1, packet(text)))  # XMP, as BYTE
    tags.sort(key=lambda t: t[0])
    ifd_at = 8 + len(data) + (len(data) & 1)
    extra_at = ifd_at + 2 + 12 * len(tags) + 4
    entries, extra = [], b""
    for tag, kind, value in tags:
        raw = _tiff_value(kind, value)
        count = len(raw) // _SIZES.get(kind, 1) if kind != _RATIONAL else len(value)
        if len(raw) <= 4:
            entries.append(struct.pack("<HHI", tag, kind, count) + raw.ljust(4, b"\0"))
        else:
            entries.append(struct.pack("<HHII", tag, kind, count, extra_at + len(extra)))
            extra += raw + b"\0" * (len(raw) & 1)  # values start on word boundaries
    head = b"II" + struct.pack("<HI", 42, ifd_at) + data + b"\0" * (len(data) & 1)
    return head + struct.pack("<H", len(tags)) + b"".join(entries) + b"\0\0\0\0" + extra


def _rational(x: float) -> tuple[int, int]:
    den = 10000
    return round(x * den), den


def _tiff_value(kind: int, value: Any) -> bytes:
    if kind == _ASCII:
        return value.encode("ascii", "replace") + b"\0"
    if kind in (_UNDEFINED, 1):
        return bytes(value)
    if kind == _RATIONAL:
        return b"".join(struct.pack("<II", *r) for r in value)
    return struct.pack(f"<{len(value)}{'H' if kind == _SHORT else 'I'}", *value)
