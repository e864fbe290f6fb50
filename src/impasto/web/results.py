"""A job's results as a person handles them: the name a download is saved under, and deleting a job's folder.

Both stay inside what the queue made: a name is built from the input labels (display names, sanitised here to
letters, digits and ``._+-``), and only ``RESULTS/<id>`` is ever removed, never a link and never anything outside.
"""

from __future__ import annotations

import logging
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Any

from ..errors import OutputError

log = logging.getLogger("impasto.web")

TRASH_PREFIX = ".deleting-"  # not a job id, so a folder being deleted is never read back as a job


def file_stem(label: str, fallback: str) -> str:
    """An input's display label as part of a file name: no extension, ASCII letters, digits, ``._+-``, short."""
    stem = label.rsplit(".", 1)[0] if "." in label.lstrip(".") else label
    ascii_only = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    dashed = re.sub(r"[^A-Za-z0-9._+]+", "-", ascii_only.replace("-", " "))  # runs of anything else: one dash
    return dashed.strip("-._")[:40].strip("-._") or fallback


def download_name(inputs: dict[str, Any], job_id: str) -> str:
    """``<content>-<style>[+<style>...]-<id>.png``, e.g. ``photo-starry-night-sApUNhLa.png``."""
    styles = "+".join(file_stem(s, f"style{i + 1}") for i, s in enumerate(inputs["styles"]))
    return f"{file_stem(inputs['content'], 'content')}-{styles}-{job_id[:8]}.png"


def check_job_folder(root: Path, folder: Path, job_id: str) -> None:
    """Refuse anything but the plain folder ``root/<job_id>`` (a link there could point anywhere)."""
    expected = root / job_id
    if folder != expected or folder.is_symlink() or folder.resolve().parent != root.resolve():
        raise OutputError(f"{folder}: not a job folder of {root}; nothing deleted")


def set_aside(root: Path, job_id: str) -> Path | None:
    """Rename ``root/<job_id>`` out of the gallery (atomic: a restart never finds half a job); None if it is gone."""
    trash = root / f"{TRASH_PREFIX}{job_id}"
    try:
        (root / job_id).rename(trash)
    except FileNotFoundError:
        return None
    return trash


def remove(trash: Path | None) -> None:
    """Remove a folder set aside (slow for big results: call it outside the queue's lock)."""
    if trash is None:
        return
    shutil.rmtree(trash, ignore_errors=True)
    if trash.exists():
        log.warning("could not remove all of %s", trash)


def is_trash(folder: Path) -> bool:
    return folder.name.startswith(TRASH_PREFIX)
