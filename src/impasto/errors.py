"""Library errors: one line that names the problem and the fix.

The CLI maps ``ImpastoError`` subclasses to exit codes (2 for bad input, 1 for a failed run); anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class ImpastoError(Exception):
    """Base class of every error impasto raises on purpose."""

    exit_code = 1


class ConfigError(ImpastoError, ValueError):
    """A setting is invalid: the message names the key, the value and what is allowed.

    ``key`` is the setting the error is about (``"style_weight"``), for front ends that point at it (a TOML line, a
    form field); None when no one setting is (a TOML syntax error, a missing file).
    """

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # pickled with the error (BaseException.__reduce__ keeps __dict__)


class ImageError(ImpastoError, ValueError):
    """An input image cannot be used: the message names the file and the problem."""

    exit_code = 2


class OutputError(ImpastoError, OSError):
    """The output cannot be written where it was asked for (checked before the run starts)."""

    exit_code = 2


class WriteError(OutputError):
    """A file could not be written once the work was done (a full disk, a read-only file system): the message
    names the file and why; what was written before it stays (after a stop, the checkpoint is written first)."""

    exit_code = 1

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason  # "the disk is full", "the file system is read-only": for messages without the path


class WeightsError(ImpastoError, RuntimeError):
    """The VGG19 weights cannot be found or loaded."""

    exit_code = 2


class ResourceError(ImpastoError, RuntimeError):
    """The run would not fit the device's memory, or the device is not available."""

    exit_code = 2


class DivergedError(ImpastoError, FloatingPointError):
    """The loss or the image became NaN/Inf; the last finite image was kept."""

    exit_code = 1


class Cancelled(ImpastoError):
    """The run was stopped through its stop token (Ctrl-C, a web cancel)."""

    exit_code = 130
