"""The run's recipe in a PNG: written as JSON in an ``impasto`` iTXt chunk when the image is saved, read back by
``impasto recipe``. JPEGs are saved without it (quality 95, no chroma subsampling).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..errors import ImageError, OutputError
from .files import SAVE_FORMATS, atomic_write

RECIPE_KEY = "impasto"


def encode_image(im: Image.Image, fmt: str, recipe: dict[str, Any] | None = None) -> bytes:
    """PIL image → PNG bytes (with ``recipe`` as JSON in the ``impasto`` chunk) or JPEG bytes (no recipe)."""
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if recipe is not None:
            info.add_itxt(RECIPE_KEY, json.dumps(recipe, sort_keys=True, default=str), zip=True)
        im.save(buf, "PNG", pnginfo=info)
    else:
        im.save(buf, "JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def save_image(im: Image.Image, path: str | os.PathLike[str], recipe: dict[str, Any] | None = None) -> Path:
    """Save PNG (with the recipe in its metadata) or JPEG, atomically."""
    p = Path(path)
    fmt = SAVE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise OutputError(f"{p}: unknown image extension {p.suffix!r}; use .png or .jpg")
    try:
        atomic_write(p, encode_image(im, fmt, recipe))
    except OSError as e:
        raise OutputError(f"{p}: cannot write ({e.strerror or e})") from None
    return p


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The recipe stored in a PNG written by impasto."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            text = im.text.get(RECIPE_KEY) if hasattr(im, "text") else None  # type: ignore[attr-defined]
    except (UnidentifiedImageError, OSError):
        raise ImageError(f"{p}: not an image") from None
    if not text:
        raise ImageError(f"{p}: carries no impasto recipe (only PNGs written by impasto do)")
    return json.loads(text)
