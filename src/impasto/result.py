"""A run's Result (its image, history and recipe), the loss-history CSV and the recipe written into every PNG."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import __version__
from .config import StyleConfig
from .core.state import RunState, take
from .core.terms import TERM_DESCRIPTIONS, TERM_NAMES
from .errors import WriteError
from .inputs import Prepared
from .io.checkpoint import save_checkpoint
from .io.encode import to_pil
from .io.files import atomic_write, check_output
from .io.recipe import save_image
from .outputs import parse_print
from .runtime import resolve_precision

LOSS_CONVENTIONS = {
    "relative": "G=FF^T/(HW); style_l=|G-G*|^2/|G*|^2, layer weights normalised to sum 1; "
                "content=mean over layers of |F-F*|^2/|F*|^2; tv=mean squared neighbour difference on [0,1] pixels",
    "classic": "G=FF^T; style=sum_l w_l*mean((G-G*)^2)/(C*H*W); content=mean((F-F*)^2) (the PyTorch exercise)",
    "jcjohnson": "G=FF^T/(C*H*W); style=sum_l w_l*mean((G-G*)^2); content=sum over layers of mean((F-F*)^2); "
                 "tv=1/2 sum of squared differences on 0-255 pixels (neural-style's TVLoss)",
}
CALIBRATED = ("calibrated per layer on Caffe-preprocessed weights: style_l=|G-G*|^2/|G*|^2 (G=FF^T/(HW)), "
              "content=|F-F*|^2/|F*|^2, layers summed with their weights, style_weight x 2e-7 (the docs' how-to/study, "
              "'The study on the bundled network')")


def describe_convention(loss_norm: str, weights: str) -> str:
    """What the losses of a run are, in one line: its convention, and for ``classic``, whether it was calibrated
    (the bundled network is Caffe-preprocessed; torchvision's is not; a file's layout decides)."""
    text = f"{loss_norm}: {LOSS_CONVENTIONS[loss_norm]}"
    if loss_norm != "classic" or weights == "torchvision":
        return text
    return f"{text}; {CALIBRATED}" if weights == "bundled" else f"{text}; if the file is Caffe-layout, {CALIBRATED}"


TERMS = TERM_NAMES  # the objective's terms, in order: one column each in histories, CSVs, plots and the web chart
LOSS_DESCRIPTIONS = {"total": "total loss (weighted sum)", **TERM_DESCRIPTIONS}
HISTORY_COLUMNS = ("step", "scale", "time", "total", *TERM_NAMES)


@dataclass
class Result:
    """A finished (or stopped) run. In a notebook it displays as its image."""

    image: Image.Image
    config: StyleConfig
    history: list[dict[str, float]]
    status: str  # done | cancelled | diverged (see impasto.STATUSES)
    message: str
    elapsed: float
    recipe: dict[str, Any]
    state: RunState | None = field(default=None, repr=False)
    snapshots: list[tuple[int, Image.Image]] = field(default_factory=list, repr=False)
    pixels: torch.Tensor | None = field(default=None, repr=False)  # (3|4, H, W) float: what ``save`` quantises

    @property
    def losses(self) -> dict[str, float]:
        """The last step's loss terms."""
        return {k: v for k, v in self.history[-1].items() if k not in ("step", "scale", "time")} if self.history else {}

    def save(self, path: str | os.PathLike[str], *, force: bool = True) -> Path:
        """Save the image (PNG, TIFF, WebP or JPEG, with its recipe, at the config's ``bit_depth``) and the loss
        history beside it (``.losses.csv``)."""
        p = check_output(path, force=force)
        write_result(self, p)
        return p

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, "PNG")
        return buf.getvalue()


def history_columns(history: list[dict[str, float]]) -> list[str]:
    """step, scale, time, total, then every term the run reported (the objective's list, in its order)."""
    seen = dict.fromkeys(HISTORY_COLUMNS)
    for row in history[:1]:
        seen.update(dict.fromkeys(row))
    return list(seen)


def write_result(result: Result, path: Path) -> None:
    """The image (with its recipe), then its loss history beside it, to an output already checked: a full disk is
    a WriteError naming the file that failed, and the image stays when only its history could not be written.
    The float pixels are quantised here, once, at the config's bit depth."""
    save_picture(result, path)
    write_history(path.with_suffix(".losses.csv"), result.history)


def save_picture(result: Result, path: Path, recipe: dict[str, Any] | None = None) -> None:
    """The result's image alone (``recipe``: another recipe than its own), from its float pixels when it has them,
    at its config's bit depth and with its print's DPI."""
    cfg = result.config
    picture = as_array(result.pixels) if result.pixels is not None else result.image
    save_image(picture, path, recipe if recipe is not None else result.recipe, bit_depth=cfg.bit_depth,
               dpi=print_dpi(cfg))


def as_array(pixels: torch.Tensor) -> np.ndarray:
    """(C, H, W) float → (H, W, C) float32 numpy, what the writers take."""
    return pixels.detach().float().cpu().permute(1, 2, 0).numpy()


def render(pixels: torch.Tensor) -> Image.Image:
    """(3|4, H, W) float → an 8-bit RGB or RGBA PIL image."""
    return to_pil(as_array(pixels))


def print_dpi(cfg: StyleConfig) -> float | None:
    """The DPI a print's file records; None without ``print_size``."""
    return parse_print(cfg.print_size).dpi if cfg.print_size is not None else None


def write_run(result: Result, path: Path, checkpoint: Path | None = None, index: int = 0) -> None:
    """A run's files. A stopped run with a ``checkpoint`` path writes it first (the run ``index`` of its batch's
    state), so that a disk that fills up after it still leaves the run resumable; a WriteError then says so."""
    if checkpoint is not None and result.status == "cancelled" and result.state is not None:
        state = take(result.state, [index]) if result.state.n > 1 else result.state
        save_checkpoint(checkpoint, state.to_dict(), result.config.to_dict(), result.recipe["inputs_fingerprint"])
        try:
            write_result(result, path)
        except WriteError as e:
            raise WriteError(f"{e}; {checkpoint} was written before it, so the run can be resumed (--resume) "
                             "once there is room") from None
        return
    write_result(result, path)


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=history_columns(history), extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    atomic_write(path, buf.getvalue().encode(), what="the loss history")


def recipe(cfg: StyleConfig, device: torch.device, prepared: Prepared, state: RunState | None, index: int,
           elapsed: float) -> dict[str, Any]:
    hist = state.history[index] if state is not None and state.history else []
    return {
        "impasto": __version__,
        "config": cfg.to_dict(),
        "config_key": cfg.key(),
        "device": str(device),
        "weights": cfg.weights,
        "seed": cfg.seed,
        "loss_convention": describe_convention(cfg.loss_norm, cfg.weights),
        "inputs": prepared.names,
        "inputs_fingerprint": prepared.fingerprint,
        "content_fingerprint": prepared.content_fingerprint,
        "notes": prepared.notes,
        "steps_done": hist[-1]["step"] if hist else 0,
        "final_losses": {k: v for k, v in hist[-1].items() if k not in ("step", "scale", "time")} if hist else {},
        "elapsed_s": round(elapsed, 3),
        "status": state.item_status(index) if state is not None else "done",
        "torch": torch.__version__,
        "precision": resolve_precision(cfg.precision, device),
    }
