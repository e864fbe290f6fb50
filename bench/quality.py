"""The quality meter: how close an image is to the style (Gram statistics) and to the content (relu4_2), measured
the same way for every tool and every setting, whatever made the image.

    style distance   = mean over relu1_1…relu5_1 of ‖G(out) − G(style)‖_F / ‖G(style)‖_F,  G = F Fᵀ / (H·W)
    content distance = ‖F(out) − F(content)‖_F / ‖F(content)‖_F  at relu4_2

All three images go through the same path first: 8-bit RGB (what a saved picture is), resized with PIL's bicubic
filter so the long side is ``EVAL_SIZE`` (the output to the content's exact evaluation shape; the style keeps its own
aspect ratio), then the bundled VGG19 (original Caffe weights, caffe preprocessing, max pooling). Grams in float64.

    python bench/quality.py OUT.png [...] --content CONTENT.jpg --style STYLE.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from impasto.weights import load_vgg

EVAL_SIZE = 400
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
ImageLike = str | Path | Image.Image | torch.Tensor


def to_pil(img: ImageLike) -> Image.Image:
    """Path, PIL image or tensor ((3, H, W) or (1, 3, H, W), RGB in [0, 1]) → 8-bit RGB PIL image."""
    if isinstance(img, (str, Path)):
        with Image.open(img) as im:
            return im.convert("RGB")
    if isinstance(img, Image.Image):
        return img.convert("RGB")
    t = img.detach().float().cpu()
    t = t[0] if t.dim() == 4 else t
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _tensor(im: Image.Image) -> torch.Tensor:  # → (1, 3, H, W) in [0, 1]
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)


def _fit(h: int, w: int, long_side: int) -> tuple[int, int]:
    s = long_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def _resize(im: Image.Image, hw: tuple[int, int]) -> Image.Image:
    return im if (im.height, im.width) == hw else im.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)


def _gram(feat: torch.Tensor) -> torch.Tensor:  # (1, C, H, W) → (C, C), normalised by positions
    f = feat[0].double().flatten(1)
    return f @ f.T / f.shape[1]


class Meter:
    """Targets computed once for a (content, style) pair; ``meter(image)`` → the distances."""

    def __init__(self, content: ImageLike, style: ImageLike, size: int = EVAL_SIZE) -> None:
        self.model = load_vgg("bundled")
        c, s = to_pil(content), to_pil(style)
        self.shape = _fit(c.height, c.width, size)
        with torch.no_grad():
            self.content = self.model(_tensor(_resize(c, self.shape)), [CONTENT_LAYER])[CONTENT_LAYER].double()
            feats = self.model(_tensor(_resize(s, _fit(s.height, s.width, size))), STYLE_LAYERS)
            self.grams = {k: _gram(feats[k]) for k in STYLE_LAYERS}

    def __call__(self, image: ImageLike) -> dict[str, float]:
        x = _tensor(_resize(to_pil(image), self.shape))
        with torch.no_grad(), torch.autocast("cpu", enabled=False):  # fp32 even inside a caller's autocast
            feats = self.model(x, (*STYLE_LAYERS, CONTENT_LAYER))
        per_layer = {k: float((_gram(feats[k]) - g).norm() / g.norm()) for k, g in self.grams.items()}
        content = float((feats[CONTENT_LAYER].double() - self.content).norm() / self.content.norm())
        return {"style": sum(per_layer.values()) / len(per_layer), "content": content, **per_layer}


def distances(image: ImageLike, content: ImageLike, style: ImageLike, size: int = EVAL_SIZE) -> dict[str, float]:
    """One-off measurement (builds the targets each call; use ``Meter`` to measure many images of one pair)."""
    return Meter(content, style, size)(image)


def reaches(d: dict[str, float], target: dict[str, float]) -> bool:
    """Whether an image is at least as good as ``target`` on both distances."""
    return d["style"] <= target["style"] and d["content"] <= target["content"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", type=Path, help="images to measure")
    p.add_argument("--content", type=Path, required=True)
    p.add_argument("--style", type=Path, required=True)
    p.add_argument("--size", type=int, default=EVAL_SIZE)
    a = p.parse_args(argv)
    meter = Meter(a.content, a.style, a.size)
    print(f"{'image':40s} {'style':>7s} {'content':>7s}  " + " ".join(f"{k:>7s}" for k in STYLE_LAYERS))
    for path in a.images:
        d = meter(path)
        print(
            f"{str(path)[-40:]:40s} {d['style']:7.4f} {d['content']:7.4f}  "
            + " ".join(f"{d[k]:7.4f}" for k in STYLE_LAYERS)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
