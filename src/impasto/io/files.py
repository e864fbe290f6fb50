"""Files: checks made before any work (folder, extension, existing file, not an input), atomic writes, and the
words for what is wrong with a path.

A write goes to a hidden temporary file in the same folder (``.NAME.PID-HOST-RANDOM.part``), is flushed to disk and
renamed into place, so an interrupted write never leaves a broken file and a reader sees either the old file or the
new one. A writer killed outright (SIGKILL, a power cut) leaves its temporary file behind: ``clean_stale_temps``
removes those of dead writers (their pid is in the name) and any older than ``STALE_AFTER``, on the next run in that
folder. A write that fails (a full disk, a read-only file system) is a ``WriteError`` naming the file and the reason.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import socket
import stat
import time
from pathlib import Path
from typing import Any

from ..errors import ImageError, OutputError, WriteError
from .fetch import is_url

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
SAVE_NAMES = ".png, .jpg, .tif or .webp"
STALE_AFTER = 600.0  # seconds: a temporary file this old is a leftover even if its pid is alive (reused)
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]  # a shared folder may hold other hosts' temps
_TEMP = re.compile(r"^\..+\.(?:(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-)?[0-9a-f]{8}\.(?:part|probe)$")

# errno → (what happened, what to do) for writes; the words the one-line errors use.
_WRITE_REASONS = {
    errno.ENOSPC: ("the disk is full", "free some space and run it again"),
    errno.EDQUOT: ("the disk is full (the disk quota is used up)", "free some space and run it again"),
    errno.EROFS: ("the file system is read-only", "write to another folder"),
    errno.EACCES: ("permission denied", "write to a folder you may write in"),
    errno.EPERM: ("permission denied", "write to a folder you may write in"),
    errno.EFBIG: ("the file is too large for this file system", "write to another disk"),
    errno.EIO: ("an input/output error (a failing or removed disk)", "check the disk"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter name"),
}
_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device file",
          stat.S_IFBLK: "a device file (a disk)"}


# -- what is wrong with a path, in words ------------------------------------------------------------------------------
def printable(text: str) -> str:
    """``text`` with what could drive a terminal or break a one-line message written as escapes: control
    characters (ESC, newline, BEL), bidi overrides and other format characters, lone surrogates."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def os_reason(e: OSError) -> str:
    """An OSError in words: "the disk is full", "permission denied", or the system's own words."""
    if e.errno in _WRITE_REASONS:
        return _WRITE_REASONS[e.errno][0]
    return e.strerror or type(e).__name__


def write_error(path: str | os.PathLike[str], e: OSError, what: str = "") -> WriteError:
    """A failed write as the one-line error: the file, what it is, why, and what to do."""
    reason, fix = _WRITE_REASONS.get(e.errno or 0, (e.strerror or type(e).__name__, ""))
    return WriteError(f"{os.fspath(path)}: cannot write {what or 'it'}: {reason}" + (f"; {fix}" if fix else ""),
                      reason=reason)


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _lookup_problem(path: str, e: OSError) -> str:
    """Why ``os.stat(path)`` failed, naming the real cause (a loop, a broken link, a file on the way)."""
    if e.errno == errno.ELOOP:
        return "is a symbolic link loop (links that point at each other)"
    if e.errno == errno.ENOENT and os.path.islink(path):
        return f"is a broken symbolic link (to {os.readlink(path)!r}, which does not exist)"
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        if path.endswith(os.sep) and os.path.isfile(path.rstrip(os.sep)):
            return "is a file, not a folder (the name ends in '/')"
        for parent in Path(path).parents:  # the nearest thing on the way that exists
            if os.path.lexists(parent) and not os.path.isdir(parent):
                return f"no such file: {parent} is a file, not a folder"
            if os.path.isdir(parent):
                break
        return "no such file"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (a folder on the way to it cannot be searched)"
    return os_reason(e)


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a regular file ("no such file", "is a named pipe (FIFO), not a regular
    file", "is a symbolic link loop", ...); None when it can. Never opens it (a FIFO would block)."""
    text = os.fspath(path)
    try:
        st = os.stat(text)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the name
        return _lookup_problem(text, e) if isinstance(e, OSError) else "is not a valid file name"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(st.st_mode):
        return f"is {_kind(st.st_mode)}, not a regular file"
    if not os.access(text, os.R_OK):
        return "permission denied (the file is not readable)"
    return None


def check_input(source: str | os.PathLike[str], name: str | None = None) -> None:
    """An input image's path checked as ``load_image`` checks it (a non-empty, readable regular file), never opened;
    an ImageError naming the problem if not. URLs pass (they are fetched when loaded). The CLI calls this before it
    imports torch, so that a mistyped path is as quick an error as a mistyped flag."""
    text = os.fspath(source)
    if is_url(text):
        return
    name = text if name is None else name
    problem = path_problem(text)
    if problem is not None:
        raise ImageError(f"{name}: {problem}" + ("; check the path" if problem == "no such file" else ""))
    try:
        if os.path.getsize(text) == 0:
            raise ImageError(f"{name}: the file is empty (0 bytes)")
    except OSError as e:
        raise ImageError(f"{name}: cannot be read ({os_reason(e)})") from None


def _folder_problem(folder: Path) -> str | None:
    try:
        st = os.stat(folder)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            problem = _lookup_problem(str(folder), e)
            return f"the folder {folder} does not exist; create it first" if problem == "no such file" else \
                f"the folder {folder}: {problem.removeprefix('no such file: ')}"
        return f"the folder {folder}: {_lookup_problem(str(folder), e)}"
    if not stat.S_ISDIR(st.st_mode):
        return f"the folder {folder} is a file, not a folder"
    return None


# -- output checks ----------------------------------------------------------------------------------------------------
def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written: folder, extension, existing file.

    An existing file is overwritten only with ``force`` (never numbered: a script must know its output's name), and
    never when it is read-only or not a regular file (a FIFO, a device). The folder is tested by creating (and
    removing) a file in it, which is the only test that also holds for root, read-only mounts and /proc. Stale
    temporary files of killed writers in that folder are removed.
    """
    p = Path(path)
    if not str(path).strip() or not p.name:
        raise OutputError(f"output {str(path)!r}: give a file name ending in {SAVE_NAMES}")
    if p.is_dir():
        raise OutputError(f"{p}: is a directory; give a file name ending in {SAVE_NAMES}")
    ext = p.suffix.lower()
    if ext not in SAVE_FORMATS:
        what = f"unknown image extension {ext!r}" if ext else "no image extension"
        raise OutputError(f"{p}: {what}; use {SAVE_NAMES}")
    folder = p.parent
    problem = _folder_problem(folder)
    if problem:
        raise OutputError(f"{p}: {problem}")
    _check_existing(p, force)
    clean_stale_temps(folder)
    try:
        fd, probe = _create_temp(p, ".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{p}: cannot write in the folder {folder} ({os_reason(e)})") from None
    return p


def _check_existing(p: Path, force: bool) -> None:
    try:
        os.lstat(p)
    except OSError:
        return  # nothing there
    try:
        st = os.stat(p)
    except OSError as e:  # a broken link or a loop: --force replaces the link itself
        if not force:
            raise OutputError(f"{p}: already exists ({_lookup_problem(str(p), e)}); pass --force to replace it "
                              "or choose another name") from None
        return
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{p}: is {_kind(st.st_mode)}, not a regular file; impasto writes images to files only")
    if not force:
        raise OutputError(f"{p}: already exists; pass --force to overwrite it or choose another name")
    if not (st.st_mode & 0o222) or not os.access(p, os.W_OK):
        raise OutputError(f"{p}: exists and is read-only; --force will not replace it (make it writable first)")


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


# -- temporary files --------------------------------------------------------------------------------------------------
def _create_temp(p: Path, suffix: str) -> tuple[int, str]:
    """A new hidden file beside ``p``, named for its writer (pid, host), with the permissions a plain ``open``
    would give (0666 less the umask), not 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # The name is cut so that a long (but valid) output name still leaves room for the temporary's.
        tmp = str(p.with_name(f".{p.name[:180]}.{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}{suffix}"))
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"cannot create a temporary file beside {p}")


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows: trust the age alone there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike[str], *, now: float | None = None) -> list[str]:
    """Remove the hidden temporary files (``.part``, ``.probe``) that killed writers left in ``folder``: those whose
    writer (pid, on this host) has ended, and any older than ``STALE_AFTER``. Returns the names removed."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            dead = m["pid"] is not None and m["host"] == HOST_TAG and not pid_alive(int(m["pid"]))
            if dead or now - st.st_mtime > STALE_AFTER:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


def atomic_write(path: str | os.PathLike[str], data: bytes, *, what: str = "") -> None:
    """Write bytes to a temporary file beside ``path``, flush it to disk, then rename it into place.

    A reader, a crash or a Ctrl-C sees either the old file or the new one, never half of one. Replacing a file keeps
    its permissions. A failure (a full disk, a read-only file system) is a ``WriteError`` naming ``path`` (and
    ``what`` it is: "the loss history"), with the old file, if any, left as it was.
    """
    p = Path(path)
    tmp = None
    try:
        fd, tmp = _create_temp(p, ".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if p.exists():
            os.chmod(tmp, stat.S_IMODE(p.stat().st_mode))
        os.replace(tmp, p)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise write_error(p, e, what) from None
        raise
