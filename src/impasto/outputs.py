"""What the written file is, from the settings alone (plain data, no torch): a print's size in pixels and its DPI
(``print_size``), the colour a transparent result is flattened onto (``background``), and whether a format can
hold the result (transparency, 16 bits): each bad value or combination is one line naming the fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from .coercion import invalid
from .errors import OutputError

UNITS = {"cm": 2.54, "mm": 25.4, "in": 1.0, "inch": 1.0, '"': 1.0}  # units per inch
MAX_SIDE = 16384  # as StyleConfig's size
MIN_SIDE = 16
_PRINT = re.compile(r"\s*([0-9.]+)\s*[x×]\s*([0-9.]+)\s*([a-z\"]*)\s*@\s*([0-9.]+)\s*(dpi|ppi)?\s*", re.IGNORECASE)
_EXAMPLE = "write WIDTHxHEIGHT in cm, mm or in at a DPI, e.g. 30x40cm@300dpi or 8x10in@300dpi"
ALPHA_EXTS = ".png, .webp or .tif"
FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "TIFF": "TIFF", "WEBP": "WebP"}


@dataclass(frozen=True)
class PrintSize:
    """A print of ``width`` × ``height`` ``unit`` at ``dpi`` dots per inch."""

    width: float
    height: float
    unit: str
    dpi: float

    @property
    def pixels(self) -> tuple[int, int]:
        """(width, height) in pixels: the sides in inches times the DPI, rounded to the nearest pixel."""
        per_inch = UNITS[self.unit]
        return round(self.width / per_inch * self.dpi), round(self.height / per_inch * self.dpi)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels, as StyleConfig's ``shape``."""
        w, h = self.pixels
        return h, w


def parse_print(text: str, key: str = "print_size") -> PrintSize:
    """``30x40cm@300dpi`` (width x height, then the DPI) → a PrintSize; a ConfigError naming what is wrong."""
    m = _PRINT.fullmatch(text)
    if m is None:
        raise invalid(key, text, _EXAMPLE)
    unit = m.group(3).lower()
    if not unit:
        raise invalid(key, text, "no unit after the size; write it in cm, mm or in, e.g. 30x40cm@300dpi")
    if unit not in UNITS:
        raise invalid(key, text, f"unknown unit {m.group(3)!r}; use cm, mm or in, e.g. 30x40cm@300dpi")
    try:
        w, h, dpi = float(m.group(1)), float(m.group(2)), float(m.group(4))
    except ValueError:
        raise invalid(key, text, _EXAMPLE) from None
    if not (math.isfinite(dpi) and dpi > 0):
        raise invalid(key, text, "the DPI must be more than 0 (300 is usual for prints)")
    if not (w > 0 and h > 0):
        raise invalid(key, text, "the width and the height must be more than 0")
    p = PrintSize(w, h, unit, dpi)
    pw, ph = p.pixels
    if max(pw, ph) > MAX_SIDE:
        raise invalid(key, text, f"makes {pw}x{ph} pixels, over {MAX_SIDE} a side; use a lower DPI or a smaller print")
    if min(pw, ph) < MIN_SIDE:
        raise invalid(key, text, f"makes {pw}x{ph} pixels, under {MIN_SIDE} a side; use a higher DPI")
    return p


def parse_colour(text: str, key: str = "background") -> tuple[int, int, int]:
    """A colour name or #rrggbb (anything PIL.ImageColor reads, alpha dropped) → (r, g, b) in 0-255."""
    from PIL import ImageColor

    try:
        return ImageColor.getrgb(text.strip())[:3]  # type: ignore[return-value]
    except ValueError:
        raise invalid(key, text, "give a colour name (white, black) or #rrggbb, e.g. #f4efe6") from None


def cover_box(width: int, height: int, shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """The centred part (left, top, right, bottom, as fractions) of a width × height image that has the aspect
    ratio of ``shape`` (h, w): what a print lab crops when a photo and its paper differ in proportions."""
    h, w = shape
    want, have = w / h, width / height
    if math.isclose(want, have, rel_tol=1e-3):
        return 0.0, 0.0, 1.0, 1.0
    if have > want:  # the photo is wider: trim its sides
        keep = want / have
        return (1 - keep) / 2, 0.0, (1 + keep) / 2, 1.0
    keep = have / want
    return 0.0, (1 - keep) / 2, 1.0, (1 + keep) / 2


def check_format(path: str | Path, fmt: str, *, bit_depth: int, transparent: bool, source: str = "the photo") -> None:
    """Refuse, before any work, a format that cannot hold the result: 16 bits outside PNG and TIFF, transparency
    in JPEG (``transparent``: the result keeps an alpha channel, i.e. no ``background`` was given)."""
    name = FORMAT_NAMES.get(fmt, fmt)
    if bit_depth == 16 and fmt not in ("PNG", "TIFF"):
        raise OutputError(f"{path}: {name} holds 8 bits a channel, not 16; write .png or .tif for --bit-depth 16, "
                          "or leave --bit-depth out")
    if transparent and fmt == "JPEG":
        raise OutputError(f"{path}: {source} is transparent and JPEG cannot hold transparency; write {ALPHA_EXTS} "
                          "to keep it, or give --background COLOUR (e.g. white) to flatten it")
