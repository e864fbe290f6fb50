"""What ``impasto batch`` paints: files, folders and globs turned into image paths (URLs as they are).

Plain paths and globs only (no torch): ``impasto batch`` expands its arguments before it imports the engine, so a
mistyped path is as quick an error as a mistyped flag.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, ImageError
from ..io.fetch import is_url

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def expand(items: Sequence[str | os.PathLike[str]], what: str) -> list[str]:
    """Files, folders (their images, sorted) and globs → paths; URLs as they are. Nothing found is an error."""
    out: list[str] = []
    for item in items:
        text = os.fspath(item)
        if is_url(text):
            out.append(text)
        elif Path(text).is_dir():
            found = sorted(str(p) for p in Path(text).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ImageError(f"{text}: no images in this folder ({', '.join(IMAGE_SUFFIXES)})")
            out += found
        elif any(c in text for c in "*?[") and not Path(text).exists():
            found = sorted(p for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"{text}: matches no image files")
            out += found
        elif not Path(text).is_file():
            raise ImageError(f"{text}: no such file (give files, folders, globs or URLs)")
        else:
            out.append(text)
    if not out:
        raise ConfigError(f"no {what} given")
    seen: set[str] = set()
    unique = []
    for text in out:  # each once, in order (the same file named two ways, too)
        key = text if is_url(text) else os.path.realpath(text)
        if key not in seen:
            seen.add(key)
            unique.append(text)
    return unique
