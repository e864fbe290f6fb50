"""Optical flow between input frames: providers behind one interface, and a cache so that each pair is computed once.

A flow from frame A to frame B is a float32 array (H, W, 2) of (dx, dy) in pixels: the point (x, y) of A is seen at
(x + dx, y + dy) in B. The loop needs, for frame t and each earlier frame t − j, both directions: t → t − j to warp
the earlier output onto frame t, and t − j → t for the forward–backward consistency test.

Departure from Ruder et al., who used DeepFlow and EpicFlow (22 s to 3 min a pair, binaries that no longer build):
OpenCV's DIS (Kroeger et al. 2016) takes milliseconds a pair on a CPU and installs with pip; Farneback is the
fallback. A learned flow (RAFT) plugs in as another provider: any callable (a, b) → flow with a ``name``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import ConfigError
from ..io.files import atomic_write
from . import require


class FlowProvider(Protocol):
    """(frame A, frame B), each (H, W, 3) uint8 RGB → the flow from A to B, (H, W, 2) float32."""

    name: str

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray: ...


def _grey(rgb: np.ndarray) -> np.ndarray:
    cv2 = require("cv2")
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


class DISFlow:
    """OpenCV's Dense Inverse Search (``medium`` preset: patch search on a pyramid, then variational refinement)."""

    name = "dis"

    def __init__(self, preset: str = "medium") -> None:
        self.preset = preset

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        cv2 = require("cv2")
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        dis = cv2.DISOpticalFlow_create(presets[self.preset])
        return dis.calc(_grey(a), _grey(b), None).astype(np.float32)


class FarnebackFlow:
    """OpenCV's Farneback (polynomial expansion): smoother and slower than DIS, weaker at large motions."""

    name = "farneback"

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        cv2 = require("cv2")
        flow = cv2.calcOpticalFlowFarneback(_grey(a), _grey(b), None, pyr_scale=0.5, levels=4, winsize=15,
                                            iterations=5, poly_n=5, poly_sigma=1.2, flags=0)
        return flow.astype(np.float32)


PROVIDERS: dict[str, Callable[[], FlowProvider]] = {"dis": DISFlow, "farneback": FarnebackFlow}


def provider(name: str) -> FlowProvider:
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise ConfigError(f"flow = {name!r} is invalid: choose one of {', '.join(PROVIDERS)}", key="flow") from None


class FlowCache:
    """Flows between frames of one clip, computed on first use and kept in ``folder`` (float16 .npy files, about
    1 MB a pair at 512 px), so that a resumed run computes none again."""

    def __init__(self, frames: list[np.ndarray], flow: FlowProvider, folder: Path | None = None) -> None:
        self.frames, self.flow, self.folder = frames, flow, folder
        self.computed = 0  # pairs computed here (not read from the cache): tests read it

    def _path(self, a: int, b: int) -> Path | None:
        return None if self.folder is None else self.folder / f"{self.flow.name}-{a:06d}-{b:06d}.npy"

    def __call__(self, a: int, b: int) -> np.ndarray:
        """The flow from frame ``a`` to frame ``b`` (indices into the clip)."""
        path = self._path(a, b)
        if path is not None and path.exists():
            try:
                return np.load(path).astype(np.float32)
            except (OSError, ValueError):
                pass  # a damaged cache file: compute it again
        flow = self.flow(self.frames[a], self.frames[b])
        self.computed += 1
        if path is not None:
            import io

            os.makedirs(path.parent, exist_ok=True)
            buf = io.BytesIO()
            np.save(buf, flow.astype(np.float16))
            atomic_write(path, buf.getvalue(), what="the optical flow cache")
        return flow
