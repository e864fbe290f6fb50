"""``impasto video``: style transfer for video with temporal consistency (Ruder, Dosovitskiy & Brox 2016/2018).

Modules: ``container`` (frames in from a video file or a folder, out to a folder of PNGs or a video file, audio
carried over), ``flow`` (optical flow providers and their cache), ``consistency`` (warping, certainty masks, the
warping error), ``loop`` (the frame loop: ``stylize_video``), ``settings`` (the video's own settings) and ``cli``
(the command's parser). The names below load on first use (PEP 562), so that ``impasto.video.cli`` imports nothing
heavy: ``impasto --help`` never imports torch, PyAV or OpenCV.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import ImpastoError

_EXPORTS = {
    "VideoResult": "loop", "stylize_video": "loop", "VideoSettings": "settings",
    "FlowProvider": "flow", "PROVIDERS": "flow",
}

__all__ = ["PROVIDERS", "FlowProvider", "MissingVideoExtra", "VideoResult", "VideoSettings", "stylize_video"]

if TYPE_CHECKING:
    from .flow import PROVIDERS, FlowProvider
    from .loop import VideoResult, stylize_video
    from .settings import VideoSettings


class MissingVideoExtra(ImpastoError):
    """PyAV or OpenCV is not installed: the message says which ``pip install`` fixes it."""

    exit_code = 2


def require(module: str) -> Any:
    """Import ``av`` (PyAV: containers) or ``cv2`` (OpenCV: optical flow), or say in one line what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"av": "PyAV (av)", "cv2": "OpenCV (opencv-python-headless)"}.get(module, module)
        raise MissingVideoExtra(f"impasto video needs {package}: pip install 'impasto[video]'") from None


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
