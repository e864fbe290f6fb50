"""The quality meter, from the command line: how close each image is to the style and to the content.

The meter itself is the library's (``impasto.api.Meter``, src/impasto/meter.py, where the measures are defined):

    style    = mean over relu1_1…relu5_1 of ‖G(out) − G(style)‖_F / ‖G(style)‖_F,  G = F Fᵀ / (H·W)   (the old one)
    style14  = the same over relu1_1…relu4_1 (no relu5_1: no reward for copying object parts of the painting)
    content  = ‖F(out) − F(content)‖_F / ‖F(content)‖_F  at relu4_2
    colour   = sliced Wasserstein distance in CIELAB between the image's pixels and the style's, in ΔE units

All images are 8-bit RGB resized (PIL bicubic) to a long side of ``EVAL_SIZE``, then the bundled VGG19; Grams in
float64. Several styles blend their Grams (``--blend 0.5 0.5``, as the report did).

    python bench/quality.py OUT.png [...] --content CONTENT.jpg --style STYLE.jpg [STYLE2.jpg --blend 0.5 0.5]

The other benchmarks import ``Meter`` from here: ``Meter(content, style)(image)`` is a dict with every measure and
each style layer's distance.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from impasto.api import Meter as _Meter
from impasto.meter import (  # the helpers other benchmarks use, under their old names
    CONTENT_LAYER,
    EVAL_SIZE,
    STYLE_LAYERS,
    ImageLike,
    to_pil,
)
from impasto.meter import fit as _fit
from impasto.meter import gram as _gram
from impasto.meter import resize as _resize
from impasto.meter import to_tensor as _tensor

__all__ = ["CONTENT_LAYER", "EVAL_SIZE", "STYLE_LAYERS", "ImageLike", "Meter", "_fit", "_gram", "_resize", "_tensor",
           "distances", "reaches", "to_pil"]
MEASURES = ("style", "style14", "content", "colour")


class Meter(_Meter):
    """Targets computed once for a (content, style or styles) pair; ``meter(image)`` → a dict of the distances."""

    def __init__(self, content: ImageLike, style: ImageLike | Sequence[ImageLike], size: int = EVAL_SIZE,
                 blend: Sequence[float] | None = None) -> None:
        super().__init__(content, style, size=size)
        self.blend = blend

    def __call__(self, image: ImageLike, blend: Sequence[float] | None = None) -> dict[str, float]:  # type: ignore[override]
        return self.measure(image, blend if blend is not None else self.blend).as_dict()


def distances(image: ImageLike, content: ImageLike, style: ImageLike, size: int = EVAL_SIZE) -> dict[str, float]:
    """One-off measurement (builds the targets each call; use ``Meter`` to measure many images of one pair)."""
    return Meter(content, style, size)(image)


def reaches(d: dict[str, float], target: dict[str, float]) -> bool:
    """Whether an image is at least as good as ``target`` on both of the old distances (style, content)."""
    return d["style"] <= target["style"] and d["content"] <= target["content"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", type=Path, help="images to measure")
    p.add_argument("--content", type=Path, required=True)
    p.add_argument("--style", type=Path, nargs="+", required=True, help="one style image, or several to blend")
    p.add_argument("--blend", type=float, nargs="+", help="a weight per style image (default: equal)")
    p.add_argument("--size", type=int, default=EVAL_SIZE)
    a = p.parse_args(argv)
    meter = Meter(a.content, a.style, a.size, a.blend)
    print(f"{'image':40s} " + " ".join(f"{k:>7s}" for k in MEASURES) + "  "
          + " ".join(f"{k:>7s}" for k in STYLE_LAYERS))
    for path in a.images:
        d = meter(path)
        print(f"{str(path)[-40:]:40s} " + " ".join(f"{d[k]:7.4f}" for k in MEASURES) + "  "
              + " ".join(f"{d[k]:7.4f}" for k in STYLE_LAYERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
