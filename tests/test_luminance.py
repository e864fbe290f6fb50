"""Luminance-only transfer with coarse-to-fine. The defect: the content's chroma was not resized to an image rendered
at a coarse scale (a callback's ``step.image()``, a ``save_every`` snapshot), so previews failed or took the wrong
chroma. Oracle: the content's own chroma, resized to each scale's size."""

from __future__ import annotations

import torch
from PIL import Image

import impasto
from impasto.cli import main
from impasto.core.colour import rgb_to_ycbcr
from impasto.core.targets import resize
from impasto.io.images import pil_to_tensor, resize_exact

# The content (64 × 48) at size 64 from start size 32: scales of long side 32, 45 and 64 (√2 apart).
SIZES = [(24, 32), (34, 45), (48, 64)]
STEPS = [2, 2, 2]


def chroma(img: torch.Tensor) -> torch.Tensor:
    return rgb_to_ycbcr(img)[:, 1:]


def content_chroma(content_img: Image.Image, size: tuple[int, int]) -> torch.Tensor:
    """The content at the result's size, resized to ``size``: its Cb and Cr."""
    final = pil_to_tensor(resize_exact(content_img, *SIZES[-1]))
    return chroma(resize(final, size))


def assert_content_chroma(img: Image.Image, content_img: Image.Image, size: tuple[int, int]) -> None:
    assert (img.height, img.width) == size
    out = pil_to_tensor(img)
    diff = (chroma(out) - content_chroma(content_img, size)).abs()
    # Equal up to 8-bit rounding and the clamp to [0, 1] (a few out-of-gamut pixels).
    assert diff.mean() < 0.01 and diff.quantile(0.9) < 0.02, (size, float(diff.mean()))
    # The luminance is the style's work, not the content's: the check above is about chroma only.
    ref_y = rgb_to_ycbcr(resize(pil_to_tensor(resize_exact(content_img, *SIZES[-1])), size))[:, :1]
    assert (rgb_to_ycbcr(out)[:, :1] - ref_y).abs().mean() > 1e-3


def test_step_images_at_every_scale_keep_the_content_chroma(content_img, style_img):
    seen: list[tuple[int, tuple[int, int], Image.Image]] = []
    result = impasto.stylize(content_img, style_img, size=64, start_size=32, steps=2, first_steps=2,
                             preserve_color="luminance", progress=False, precision="fp32", style_weight=100.0,
                             lr=0.05, callback=lambda s: seen.append((s.step, s.size, s.image())))
    assert result.status == "done"
    assert [size for _, size, _ in seen] == [s for s, n in zip(SIZES, STEPS) for _ in range(n)]
    for _, size, img in seen:
        assert_content_chroma(img, content_img, size)
    assert_content_chroma(result.image, content_img, SIZES[-1])


def test_cli_snapshots_at_coarse_scales_keep_the_content_chroma(image_files, content_img, tmp_path):
    out = tmp_path / "lum.png"
    code = main(["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(out), "-q",
                 "--size", "64", "--start-size", "32", "--steps", "2", "--first-steps", "2", "--save-every", "1",
                 "--preserve-color", "luminance", "--precision", "fp32", "--style-weight", "100", "--lr", "0.05"])
    assert code == 0 and out.exists()
    step = 0
    for size, n in zip(SIZES, STEPS):
        for _ in range(n):
            step += 1
            snap = tmp_path / f"lum.step{step:05d}.png"
            assert snap.exists(), snap
            with Image.open(snap) as im:
                assert_content_chroma(im.convert("RGB"), content_img, size)
    assert not (tmp_path / f"lum.step{step + 1:05d}.png").exists()
    with Image.open(out) as im:
        assert_content_chroma(im.convert("RGB"), content_img, SIZES[-1])
