"""The standard streams, made safe for a long run: progress and messages must never be what stops it.

``2>/dev/full`` makes every write to stderr fail with ENOSPC, ``2>&-`` closes it (Python then has no
``sys.stderr`` at all, and the next file opened takes descriptor 2, where C code writes its warnings), a closed
terminal or pipe fails with EIO or EPIPE. ``SafeStream`` swallows those errors, so a progress bar or a note cannot
end a run; ``guard_std_streams`` puts /dev/null on closed descriptors 0-2 and wraps stderr for the CLI, and turns a
failed write to stdout (``impasto recipe IMG > /dev/full``, whose output is the point) into a ``WriteError``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from ..errors import WriteError
from .files import os_reason


class SafeStream:
    """A text stream whose ``write`` and ``flush`` never raise: after the first failure it writes nothing more."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = stream is None

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):  # ValueError: the stream was closed
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.broken = True

    def isatty(self) -> bool:
        try:
            return not self.broken and bool(self._stream.isatty())
        except (OSError, ValueError, AttributeError):
            return False

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> Any:  # fileno, errors, buffer ...: the stream's own
        if self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


class _Stdout:
    """stdout whose failed writes (other than a closed pipe, which the CLI handles) are a WriteError."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _guard(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except BrokenPipeError:
            raise
        except OSError as e:
            silence(1)
            raise WriteError(f"standard output: cannot write: {os_reason(e)}") from None

    def write(self, text: str) -> int:
        return self._guard(lambda: self._stream.write(text))

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def silence(fd: int) -> None:
    """Point descriptor ``fd`` at /dev/null (what it held is unwritable: let the interpreter's last flush pass)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass


def open_std_fds() -> None:
    """Open /dev/null on any of descriptors 0, 1 and 2 that is closed, so that no file impasto opens becomes one of
    them (an image written where C code prints its warnings)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
            except OSError:
                return
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def guard_std_streams() -> Callable[[], None]:
    """For the CLI: closed descriptors get /dev/null, stderr never raises, stdout raises WriteError. Returns the
    function that puts the streams back (tests call the CLI in-process)."""
    open_std_fds()
    old_err, old_out = sys.stderr, sys.stdout
    sys.stderr = SafeStream(old_err)  # type: ignore[assignment]
    if old_out is not None:
        sys.stdout = _Stdout(old_out)  # type: ignore[assignment]

    def restore() -> None:
        sys.stderr, sys.stdout = old_err, old_out

    return restore
