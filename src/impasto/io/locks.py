"""One owner per folder: ``impasto serve --results DIR`` and ``impasto sweep -o DIR`` hold ``DIR/.impasto.lock``.

Two processes working in one folder undo each other (a second server marks the first one's running job failed and
runs its queue again; two sweeps overwrite each other's records), so the second is refused with a one-line error
naming the owner. The lock is an ``fcntl.flock`` on the lock file, which the system releases when its process ends
in any way (SIGKILL included): a lock file left by a dead process is simply taken over. The file holds the owner's
pid, host, start time and command, for the message. Where ``flock`` is missing (Windows) or refused (some network
file systems), the file is created exclusively instead and a stale one, whose pid no longer runs on this host, is
taken over.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .files import os_reason, pid_alive

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".impasto.lock"
_MAX_OWNER_BYTES = 4096  # the owner's record is small; a larger file is not one of ours


class FolderLock:
    """A held lock on a folder; ``release()`` (or leaving a ``with`` block) gives it back."""

    def __init__(self, path: Path, fd: int | None, taken_over: dict[str, Any] | None) -> None:
        self.path, self._fd = path, fd
        self.taken_over = taken_over  # the stale owner's record, when one was replaced

    def release(self) -> None:
        if self._fd is None and not self.path.exists():
            return
        with contextlib.suppress(OSError):
            if _owner(self.path).get("pid") == os.getpid():  # never remove a lock someone else holds now
                os.unlink(self.path)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_folder(folder: str | os.PathLike[str], command: str) -> FolderLock:
    """Take ``folder``'s lock for ``command`` ("impasto serve"), or raise an OutputError naming its owner."""
    path = Path(folder) / LOCK_NAME
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "command": command}
    for _ in range(20):  # a lock file removed or replaced under us: start again
        try:
            if fcntl is not None:
                lock = _flock(path, record)
                if lock is not None:
                    return lock
            return _exclusive(path, record)
        except _Retry:
            continue
        except OSError as e:
            if isinstance(e, OutputError):
                raise
            raise OutputError(f"{folder}: cannot take the folder's lock {path} ({os_reason(e)})") from None
    raise OutputError(f"{folder}: cannot take the folder's lock {path}: it keeps changing; is another impasto "
                      "starting in it?")


class _Retry(Exception):
    pass


def _flock(path: Path, record: dict[str, Any]) -> FolderLock | None:
    """The lock by flock; None where the file system refuses flock (fall back to the exclusive file)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _refusal(path, _owner(path)) from None
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            return None
        raise
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino  # not a file its last owner removed as we opened it
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        raise _Retry
    previous = _owner(path)  # flock was free: whoever wrote this has ended
    with contextlib.suppress(OSError):  # a full disk: the lock holds all the same, the message has less to say
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
    return FolderLock(path, fd, previous or None)


def _exclusive(path: Path, record: dict[str, Any]) -> FolderLock:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        owner = _owner(path)
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) \
                and not pid_alive(owner["pid"]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # stale: its owner no longer runs
            raise _Retry from None
        raise _refusal(path, owner) from None
    try:
        os.write(fd, json.dumps(record).encode())
    except OSError:
        pass
    finally:
        os.close(fd)
    return FolderLock(path, None, None)


def _owner(path: Path) -> dict[str, Any]:
    """The owner's record from a lock file; {} when it is missing, empty or not one of ours."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(_MAX_OWNER_BYTES + 1)[:_MAX_OWNER_BYTES] or b"{}")
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _refusal(path: Path, owner: dict[str, Any]) -> OutputError:
    folder = path.parent
    pid, host, since, command = (owner.get(k) for k in ("pid", "host", "since", "command"))
    parts = []
    who_where = " ".join(([f"pid {pid}"] if isinstance(pid, int) and not isinstance(pid, bool) else [])
                         + ([f"on {_plain(host)}"] if isinstance(host, str) and host else []))
    if who_where:
        parts.append(who_where)
    if isinstance(since, (int, float)) and not isinstance(since, bool):
        with contextlib.suppress(ValueError, OverflowError, OSError):
            parts.append(f"since {datetime.datetime.fromtimestamp(since):%Y-%m-%d %H:%M:%S}")
    who = _plain(command) if isinstance(command, str) and command else "another impasto"
    detail = f" ({', '.join(parts)})" if parts else ""
    return OutputError(f"{folder}: is in use by {who}{detail}; wait for it to end or stop it, or use another folder "
                       f"(the lock is {path})")


def _plain(text: str) -> str:
    """A lock file's words as safe one-line text (someone else wrote it)."""
    return "".join(c if c.isprintable() else "?" for c in text)[:100]
