"""Masks that follow the motion: ``masks`` and ``keep_mask`` given for the first frame are carried along the flow,
or given per frame as folders of masks.

A mask path that is a folder holds one mask per frame taken (name order, as a folder of frames is read): each frame
gets its own and no flow is involved; use it when the masks come from a segmentation tool, when the subject changes
shape, or when the clip has cuts. A mask file is the first frame's, carried from frame to frame as the outputs are:
m_t = [W(m_{t−1}) ≥ ½], W the warp by the flow t → t − 1. Thresholding at ½ keeps the mask sharp, which repeated
bilinear warps would blur away (the feather is applied afterwards, per frame, as for a still). The certainty mask
(consistency.certainty) is not used to fill the uncertain pixels from certain ones around them: tried (a normalized
convolution, Knutsson & Westin 1993), it lost to the plain warp on a square moving over a texture (IoU with the
true mask after 1-5 frames 0.82-0.71 against 0.98-0.81), because DIS's uncertain pixels lie mostly on the
subject's leading edge, where the warp is right and the neighbours split half and half. Across a cut the flow
means nothing: the mask holds still until the next shot's frames. DIS spreads a subject's motion a few pixels
onto a smooth background, so a carried mask drifts over tens of frames: for long shots, or a subject that changes
shape, give a folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import StyleConfig
from ..errors import ConfigError
from ..masks import load_mask
from .consistency import warp
from .container import IMAGE_EXTS


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def mask_folder(folder: Path, key: str, n: int) -> list[Path]:
    """The masks in ``folder``, one per frame taken, in name order; their count must be the clip's."""
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")),
                   key=lambda p: _natural(p.name))
    if len(files) != n:
        raise ConfigError(f"{key}: the folder {folder} holds {len(files)} mask image{'s' if len(files) != 1 else ''} "
                          f"for {n} frames; give one mask per frame taken (in name order)", key=key)
    return files


def carry(mask: torch.Tensor, back: np.ndarray) -> torch.Tensor:
    """A (1, 1, H, W) mask of frame t − 1 → frame t's, 0/1 (the flow t → t − 1)."""
    return (warp(mask.float(), back) >= 0.5).float()


class MovingMasks:
    """Each frame's masks (a mapping for ``FrameRunner.frame_masks``), from the config's ``masks``/``keep_mask``."""

    def __init__(self, cfg: StyleConfig, n: int, size: tuple[int, int], flows: Callable[[int, int], np.ndarray],
                 cuts: Sequence[int]) -> None:
        self.n, self.size, self.flows, self.cuts = n, size, flows, set(cuts)
        given: dict[str, list[Any]] = {}
        if cfg.masks is not None:
            given["masks"] = list(cfg.masks)
        if cfg.keep_mask is not None:
            given["keep_mask"] = [cfg.keep_mask]
        self.folders: dict[tuple[str, int], list[Path]] = {}
        self.carried: dict[tuple[str, int], list[torch.Tensor]] = {}
        for key, sources in given.items():
            for i, source in enumerate(sources):
                label = f"{key} {i + 1}" if key == "masks" else key
                if isinstance(source, (str, Path)) and Path(source).is_dir():
                    self.folders[(key, i)] = mask_folder(Path(source), label, n)
                else:
                    self.carried[(key, i)] = [load_mask(source, f"{label} ({source})", size, torch.device("cpu"))]
        self.given = given

    @property
    def moving(self) -> bool:
        """Whether any frame's masks differ from the first frame's (carried, or a folder)."""
        return bool(self.folders) or (bool(self.carried) and self.n > 1)

    def _carried(self, key: tuple[str, int], t: int) -> torch.Tensor:
        frames = self.carried[key]
        while len(frames) <= t:
            s = len(frames)  # the next frame to carry to
            if s in self.cuts:
                frames.append(frames[-1])  # across a cut the flow means nothing: hold still
            else:
                frames.append(carry(frames[-1], self.flows(s, s - 1)))
        return frames[t]

    def at(self, t: int) -> dict[str, Any]:
        """Frame t's masks: paths (from folders) and (1, 1, H, W) tensors (carried), by setting."""
        out: dict[str, Any] = {}
        for key, sources in self.given.items():
            items = [self.folders[(key, i)][t] if (key, i) in self.folders else self._carried((key, i), t)
                     for i in range(len(sources))]
            out[key] = items if key == "masks" else items[0]
        return out
