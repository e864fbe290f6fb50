"""Output files: checks made before any work (folder, extension, existing file, not an input) and atomic writes.

A write goes to a temporary file in the same folder, is flushed to disk and renamed into place, so an interrupted
write never leaves a broken file and a reader sees either the old file or the new one.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .fetch import is_url

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written: folder, extension, existing file.

    An existing file is overwritten only with ``force`` (never numbered: a script must know its output's name), and
    never when it is read-only. The folder is tested by creating (and removing) a file in it, which is the only test
    that also holds for root, read-only mounts and /proc.
    """
    p = Path(path)
    if not str(path).strip() or not p.name:
        raise OutputError(f"output {str(path)!r}: give a file name ending in .png or .jpg")
    if p.is_dir():
        raise OutputError(f"{p}: is a directory; give a file name ending in .png or .jpg")
    ext = p.suffix.lower()
    if ext not in SAVE_FORMATS:
        what = f"unknown image extension {ext!r}" if ext else "no image extension"
        raise OutputError(f"{p}: {what}; use .png or .jpg")
    folder = p.parent
    if not folder.is_dir():
        raise OutputError(f"{p}: the folder {folder} does not exist; create it first")
    if p.exists() or p.is_symlink():
        if not force:
            raise OutputError(f"{p}: already exists; pass --force to overwrite it or choose another name")
        mode = p.stat().st_mode if p.exists() else 0
        if not (mode & 0o222) or not os.access(p, os.W_OK):
            raise OutputError(f"{p}: exists and is read-only; --force will not replace it (make it writable first)")
    try:
        fd, probe = _create_temp(p, ".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{p}: cannot write in the folder {folder} ({e.strerror or type(e).__name__})") from None
    return p


def check_not_input(output: str | os.PathLike[str], inputs: dict[str, Any]) -> None:
    """Refuse an output that is one of the run's own input files (even with --force): it would be overwritten."""
    out = Path(output)
    if not out.exists():
        return
    for role, source in inputs.items():
        if isinstance(source, (str, os.PathLike)) and not is_url(os.fspath(source)):
            try:
                same = os.path.samefile(source, out)
            except OSError:
                same = False
            if same:
                raise OutputError(f"{out}: is also the {role}; choose another output name so it is not overwritten")


def _create_temp(p: Path, suffix: str) -> tuple[int, str]:
    """A new file beside ``p`` with the permissions a plain ``open`` would give (0666 less the umask), not 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(p.with_name(f".{p.name}.{secrets.token_hex(4)}{suffix}"))
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {p}")


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes to a temporary file beside ``path``, flush it to disk, then rename it into place.

    A reader, a crash or a Ctrl-C sees either the old file or the new one, never half of one. Replacing a file keeps
    its permissions.
    """
    p = Path(path)
    fd, tmp = _create_temp(p, ".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if p.exists():
            os.chmod(tmp, stat.S_IMODE(p.stat().st_mode))
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
