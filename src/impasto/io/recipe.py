"""The run's recipe in an image: written as JSON when the image is saved (``encode``: a PNG's ``impasto`` iTXt chunk,
XMP in TIFF, WebP and JPEG), read back by ``impasto recipe`` as if a stranger had written it.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ImageError, OutputError
from .encode import RECIPE_KEY, Picture, encode
from .files import SAVE_FORMATS, SAVE_NAMES, atomic_write, os_reason, path_problem, printable
from .xmp import find_xmp, recipe_in

__all__ = ["RECIPE_KEY", "encode_image", "read_recipe", "recipe_problem", "save_image"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_RECIPE_BYTES = 2**20  # Pillow's MAX_TEXT_CHUNK; impasto's recipes are a few KB


def encode_image(im: Picture, fmt: str, recipe: dict[str, Any] | None = None, *, bit_depth: int = 8,
                 dpi: float | None = None) -> bytes:
    """A picture (PIL, or floats in [0, 1]) → the bytes of a PNG, TIFF, WebP or JPEG carrying ``recipe`` (``encode``)."""
    return encode(im, fmt, recipe, bit_depth=bit_depth, dpi=dpi)


def save_image(im: Picture, path: str | os.PathLike[str], recipe: dict[str, Any] | None = None, *,
               bit_depth: int = 8, dpi: float | None = None) -> Path:
    """Save a PNG, TIFF, WebP or JPEG (by extension) with the recipe in its metadata, atomically."""
    p = Path(path)
    fmt = SAVE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise OutputError(f"{p}: unknown image extension {p.suffix!r}; use {SAVE_NAMES}")
    atomic_write(p, encode(im, fmt, recipe, bit_depth=bit_depth, dpi=dpi), what="the image")
    return p


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The recipe stored in an image written by impasto, checked as if a stranger wrote it: only the ``impasto`` iTXt
    chunk of a PNG, or the XMP packet of a TIFF, WebP or JPEG, is read (never the pixels), at most
    ``MAX_RECIPE_BYTES`` of it, and it must be JSON of the shape impasto writes. Anything else is a one-line
    ImageError."""
    p = Path(path)
    problem = path_problem(p)
    if problem is not None:
        raise ImageError(f"{p}: {problem}")
    try:
        with open(p, "rb") as f:
            raw = _recipe_chunk(f, p)
    except OSError as e:
        raise ImageError(f"{p}: cannot be read ({os_reason(e)})") from None
    if raw is None:
        raise ImageError(f"{p}: carries no impasto recipe (only images written by impasto do: PNG, TIFF, WebP or JPEG)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ImageError(f"{p}: its impasto recipe is not valid JSON ({type(e).__name__}); "
                         "it was not written by impasto, or is damaged") from None
    why = recipe_problem(data)
    if why:
        raise ImageError(f"{p}: its impasto recipe is not what impasto writes ({why})")
    return data


def _recipe_chunk(f: Any, p: Path) -> bytes | None:
    """The ``impasto`` iTXt chunk's text (decompressed), read chunk by chunk (other chunks are skipped, not read)."""
    head = f.read(12)
    if head[:8] != PNG_SIGNATURE:
        xmp = find_xmp(f, head, p)
        if xmp is not None:
            return _bounded(recipe_in(xmp), p)
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Image.open(f).close()  # the header only: any image is fine, only the message differs
        except Exception:
            raise ImageError(f"{p}: not an image") from None
        return None
    f.seek(8)
    while True:
        header = f.read(8)
        if len(header) < 8:
            return None  # no IEND: truncated, but there is no recipe to read in any case
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IEND":
            return None
        start = f.read(min(length, 80)) if kind == b"iTXt" else b""
        if not start.startswith(RECIPE_KEY.encode() + b"\0"):  # another chunk: skipped, never read
            f.seek(length - len(start) + 4, os.SEEK_CUR)
            continue
        if length > MAX_RECIPE_BYTES:
            raise ImageError(f"{p}: its impasto recipe is over {MAX_RECIPE_BYTES // 2**20} MB; impasto's are a few "
                             "KB, so this one was not written by impasto")
        body = start + f.read(length - len(start))
        if len(body) < length or f.read(4) != struct.pack(">I", zlib.crc32(kind + body)):
            raise ImageError(f"{p}: a damaged PNG (a metadata chunk fails its checksum); re-save it")
        rest = body[len(RECIPE_KEY) + 1:]
        if len(rest) < 2:
            raise ImageError(f"{p}: its impasto recipe is damaged (the chunk is cut short)")
        compressed, text = rest[0], rest[2:].split(b"\0", 2)[-1]  # past the language tag and translated keyword
        if not compressed:
            return text
        d = zlib.decompressobj()
        try:
            out = d.decompress(text, MAX_RECIPE_BYTES)
        except zlib.error:
            raise ImageError(f"{p}: its impasto recipe is damaged (bad compressed data)") from None
        if d.unconsumed_tail:
            raise ImageError(f"{p}: its impasto recipe is over {MAX_RECIPE_BYTES // 2**20} MB; impasto's are a few "
                             "KB, so this one was not written by impasto")
        return out


def _bounded(raw: bytes | None, p: Path) -> bytes | None:
    if raw is not None and len(raw) > MAX_RECIPE_BYTES:
        raise ImageError(f"{p}: its impasto recipe is over {MAX_RECIPE_BYTES // 2**20} MB; impasto's are a few "
                         "KB, so this one was not written by impasto")
    return raw


# The keys impasto writes and their JSON types (a later version may add keys: any JSON is fine for those).
_NUMBER, _TEXT = (int, float), (str,)
_RECIPE_TYPES: dict[str, tuple[type, ...]] = {
    "impasto": _TEXT, "config": (dict,), "config_key": _TEXT, "device": _TEXT, "weights": _TEXT,
    "seed": (int, type(None)), "loss_convention": _TEXT, "inputs": (dict, list), "inputs_fingerprint": _TEXT,
    "content_fingerprint": _TEXT,
    "notes": (list,), "steps_done": (int,), "step": (int,), "final_losses": (dict,), "elapsed_s": _NUMBER,
    "status": _TEXT, "torch": _TEXT, "precision": _TEXT, "sweep": (dict,),
}


def recipe_problem(data: Any) -> str | None:
    """What is wrong with a recipe's JSON, or None when it has the shape impasto writes."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    for key, types in _RECIPE_TYPES.items():
        v = data.get(key)
        if key in data and (not isinstance(v, types) or isinstance(v, bool)) and not (v is None and key == "seed"):
            return f"{key!r} is a {type(v).__name__}"
    config = data.get("config", {})
    for k, v in config.items():
        ok = _scalar(v) or (isinstance(v, list) and all(_scalar(x) or (isinstance(x, list) and all(map(_scalar, x)))
                                                       for x in v)) \
            or (isinstance(v, dict) and all(isinstance(w, _NUMBER) and not isinstance(w, bool) for w in v.values()))
        if not ok:
            return f"config {k!r} holds a {type(v).__name__} of the wrong shape"
    if any(not isinstance(w, _NUMBER) or isinstance(w, bool) for w in data.get("final_losses", {}).values()):
        return "final_losses holds something other than numbers"
    if any(not isinstance(n, str) for n in data.get("notes", [])):
        return "notes holds something other than text"
    return None


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def for_terminal(value: Any) -> Any:
    """A recipe's value (text, or lists and dicts of it) with control characters, escape sequences, bidi overrides
    and lone surrogates written as escapes (``\\x1b``), so that printing it cannot drive the terminal."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, list):
        return [for_terminal(v) for v in value]
    if isinstance(value, dict):
        return {for_terminal(k): for_terminal(v) for k, v in value.items()}
    return value
