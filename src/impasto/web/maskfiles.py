"""A job's masks on disk: stored beside its inputs, handed to the run as images, listed for the gallery.

The page (static/masks.js) paints one mask per style image and a keep mask, white on black, and sends them with the
job (routes: the ``mask`` and ``keep_mask`` fields of POST /api/jobs). They are decoded like every upload and kept
as grey PNGs in the job's folder (``mask-1.png`` … one per style image, ``keep.png``); the run gets them as images
(``impasto.stylize(..., masks=[...], keep_mask=...)``), so no path or URL from a request is ever read. No HTTP here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io.images import LoadedImage, load_image
from ..io.recipe import save_image

KEEP = "keep"


def mask_path(folder: Path, name: str) -> Path:
    """``name``: a style's number ("1", "2", …) or "keep"; only names this module makes become paths."""
    return folder / ("keep.png" if name == KEEP else f"mask-{int(name)}.png")


def store_masks(folder: Path, masks: dict[str, Any]) -> dict[str, Any]:
    """Save a request's masks ({"masks": [LoadedImage, ...], "keep_mask": LoadedImage}) as grey PNGs; → the labels
    that the job's ``inputs`` keep (display names only)."""
    labels: dict[str, Any] = {}
    if masks.get("masks"):
        for i, m in enumerate(masks["masks"]):
            save_image(m.image.convert("L"), mask_path(folder, str(i + 1)))
        labels["masks"] = [m.name for m in masks["masks"]]
    if masks.get("keep_mask") is not None:
        save_image(masks["keep_mask"].image.convert("L"), mask_path(folder, KEEP))
        labels["keep_mask"] = masks["keep_mask"].name
    return labels


def load_masks(folder: Path, inputs: dict[str, Any]) -> dict[str, Any]:
    """The stored masks as ``impasto.stylize``'s keywords (nothing when the job has none)."""
    out: dict[str, Any] = {}
    if inputs.get("masks"):
        out["masks"] = [LoadedImage(load_image(mask_path(folder, str(i + 1))).image, name)
                        for i, name in enumerate(inputs["masks"])]
    if inputs.get("keep_mask"):
        out["keep_mask"] = LoadedImage(load_image(mask_path(folder, KEEP)).image, inputs["keep_mask"])
    return out


def mask_names(inputs: dict[str, Any]) -> list[str]:
    """The names under /api/jobs/{id}/masks/ that a job has: "1" … one per style image, then "keep"."""
    names = [str(i + 1) for i in range(len(inputs.get("masks") or []))]
    return names + ([KEEP] if inputs.get("keep_mask") else [])


def mask_urls(job_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    base = f"/api/jobs/{job_id}/masks"
    names = mask_names(inputs)
    return {"masks": [f"{base}/{n}" for n in names if n != KEEP],
            "keep_mask": f"{base}/{KEEP}" if KEEP in names else None}
