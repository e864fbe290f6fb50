"""Strength: the result blended with the photo in OKLab after the run (stylize, batch, the API, the recipe), and
``impasto blend`` re-blending a finished PNG from its recipe, with one line for each way it cannot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import api
from impasto.cli import main
from impasto.config import StyleConfig
from impasto.core import colour
from impasto.errors import ConfigError, ImageError
from impasto.io.images import load_image, pil_to_tensor, resize_exact, tensor_to_pil
from impasto.io.recipe import read_recipe

TINY = dict(size=48, start_size=32, steps=2, first_steps=2, progress=False)  # two scales: coarse to fine


def _srgb(c: float) -> float:  # the sRGB transfer, as its standard writes it
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def test_oklab_matches_ottossons_published_values():
    """sRGB primaries and white in OKLab, as in Björn Ottosson's post (bottom table) and CSS Color 4's examples."""
    rgb = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1, 1], [0.0, 0, 0]]).T.reshape(3, 5, 1)
    lab = colour.srgb_to_oklab(rgb).reshape(3, 5).T
    known = torch.tensor([[0.627955, 0.224863, 0.125846], [0.866440, -0.233888, 0.179498],
                          [0.452014, -0.032457, -0.311528], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(lab, known, atol=2e-6, rtol=0)
    torch.testing.assert_close(colour.oklab_to_srgb(colour.srgb_to_oklab(rgb)), rgb.double(), atol=1e-6, rtol=0)


def test_blend_end_points_are_exact_and_the_middle_is_oklabs():
    g = torch.Generator().manual_seed(0)
    photo, result = torch.rand(1, 3, 5, 7, generator=g), torch.rand(1, 3, 5, 7, generator=g)
    assert torch.equal(colour.blend_strength(photo, result, 0.0), photo)
    assert torch.equal(colour.blend_strength(photo, result, 1.0), result)
    # By hand: black and white meet at OKLab L = 0.5, where l = m = s = 0.5³ = 0.125, so linear r = g = b = 0.125
    # (the matrices map equal lms to grey), and sRGB 1.055·0.125^(1/2.4) − 0.055 = 0.38857 (sRGB's own midpoint
    # would be 0.5, CIELAB's L* = 50 0.466).
    black, white = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1)
    mid = colour.blend_strength(black, white, 0.5)
    assert math.isclose(_srgb(0.125), 0.388572, abs_tol=1e-6)
    torch.testing.assert_close(mid, torch.full_like(mid, _srgb(0.125)), atol=2e-6, rtol=0)
    # A brick red towards a slate blue at 0.25 (both well inside the gamut, so nothing is clipped): a quarter of the
    # way along the straight line between their OKLab coordinates (the conversion is checked above).
    brick, slate = torch.tensor([0.7, 0.3, 0.25]).view(1, 3, 1, 1), torch.tensor([0.3, 0.4, 0.6]).view(1, 3, 1, 1)
    got = colour.srgb_to_oklab(colour.blend_strength(slate, brick, 0.25))
    want = 0.75 * colour.srgb_to_oklab(slate) + 0.25 * colour.srgb_to_oklab(brick)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # Re-blending is exact in OKLab: 0.5 then to 0.8 equals 0.8 at once (inside the gamut).
    p, r = 0.2 + 0.6 * photo, 0.2 + 0.6 * result
    torch.testing.assert_close(colour.restrength(p, colour.blend_strength(p, r, 0.5), 0.5, 0.8),
                               colour.blend_strength(p, r, 0.8), atol=1e-5, rtol=0)


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), "lots"])
def test_a_strength_outside_zero_to_one_is_one_line(bad):
    with pytest.raises(ConfigError, match="strength") as e:
        StyleConfig(strength=bad)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """One batch (strength is not shared: the three runs are one pass), coarse to fine, saved with recipes."""
    from impasto.samples import sample_content, sample_style

    d = tmp_path_factory.mktemp("strength")
    content, style = d / "photo.png", d / "style.png"
    sample_content(64, 48, seed=1).save(content)
    sample_style(48, 48, seed=2).save(style)
    cfgs = [StyleConfig(size=48, start_size=32, steps=2, first_steps=2, strength=s) for s in (1.0, 0.5, 0.0)]
    outs = [d / f"s{i}.png" for i in range(3)]
    results = api.stylize_batch(str(content), [str(style)], cfgs, outputs=outs)
    photo = resize_exact(load_image(str(content)).image, 36, 48)
    return d, content, style, results, outs, photo


def test_stylize_batch_blends_each_run_and_records_its_strength(batch):
    _, _, _, (full, half, none), outs, photo = batch
    assert [len(r.history) for r in (full, half, none)] == [4, 4, 4]  # 2 scales × 2 steps, one pass for all three
    assert full.image.size == photo.size
    assert np.array_equal(np.asarray(none.image), np.asarray(photo))  # 0: the photo, exactly
    want = tensor_to_pil(colour.blend_strength(pil_to_tensor(photo), pil_to_tensor(full.image), 0.5))
    diff = np.abs(np.asarray(half.image, dtype=int) - np.asarray(want, dtype=int))
    assert diff.max() <= 1  # the run blends its float result; the oracle the 8-bit one
    assert not np.array_equal(np.asarray(half.image), np.asarray(full.image))
    assert [read_recipe(o)["config"]["strength"] for o in outs] == [1.0, 0.5, 0.0]
    assert all(read_recipe(o)["content_fingerprint"] == read_recipe(outs[0])["content_fingerprint"] for o in outs)


def test_stylize_takes_strength_as_an_override(batch):
    _, content, style, (full, half, _), _, _ = batch
    r = api.stylize(str(content), str(style), size=48, start_size=32, steps=2, first_steps=2, strength=0.5,
                    progress=False)
    assert np.array_equal(np.asarray(r.image), np.asarray(half.image))  # the same run as the batch's
    assert r.config.strength == 0.5


def test_blend_file_reblends_from_the_recipe(batch, tmp_path):
    d, _, _, (full, half, none), outs, photo = batch
    out = api.blend_file(outs[0], 0.5, tmp_path / "b.png")
    diff = np.abs(np.asarray(Image.open(out), dtype=int) - np.asarray(half.image, dtype=int))
    assert diff.max() <= 1
    rec = read_recipe(out)
    assert rec["config"]["strength"] == 0.5 and rec["blended_from"]["strength"] == 1.0
    assert rec["config_key"] == StyleConfig(**{**rec["config"]}).key()
    # From the half-strength file back to the painting: undone in OKLab (its 8-bit rounding doubled, and clipped
    # where the blend left the gamut).
    back = np.asarray(Image.open(api.blend_file(outs[1], 1.0, tmp_path / "back.png")), dtype=int)
    err = np.abs(back - np.asarray(full.image, dtype=int))
    assert np.percentile(err, 99) <= 3 and err.mean() < 1
    assert np.array_equal(np.asarray(Image.open(api.blend_file(outs[0], 0.0, tmp_path / "z.png"))), np.asarray(photo))
    assert api.blend_file(outs[0], 0.6).name == "s0-strength60.png"  # the default name, beside it


def test_blend_images_is_the_same_blend(batch):
    _, _, _, (full, half, _), _, photo = batch
    big = photo.resize((96, 72))  # any size: resized to the result
    got = api.blend_images(big, full.image, 0.5)
    want = tensor_to_pil(colour.blend_strength(pil_to_tensor(resize_exact(big, 36, 48)), pil_to_tensor(full.image), 0.5))
    assert np.array_equal(np.asarray(got), np.asarray(want))


def test_blend_cannot_is_one_line(batch, tmp_path, capsys):
    d, content, style, _, outs, _ = batch
    plain = tmp_path / "plain.png"
    Image.open(outs[0]).save(plain)  # the pixels without the recipe
    with pytest.raises(ImageError, match="carries no impasto recipe"):
        api.blend_file(plain, 0.5, tmp_path / "x.png")
    # the photo moved, then changed, then the result resized: each its own line, nothing written
    moved = d / "moved.png"
    content.rename(moved)
    try:
        with pytest.raises(ImageError, match="is gone"):
            api.blend_file(outs[0], 0.5, tmp_path / "x.png")
        Image.open(moved).rotate(180).save(content)
        with pytest.raises(ImageError, match="has changed since the run"):
            api.blend_file(outs[0], 0.5, tmp_path / "x.png")
    finally:
        moved.replace(content)
    small = tmp_path / "small.png"
    from impasto.io.recipe import save_image

    save_image(Image.open(outs[0]).resize((24, 18)), small, read_recipe(outs[0]))
    with pytest.raises(ImageError, match="resized or cropped"):
        api.blend_file(small, 0.5, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    capsys.readouterr()
    assert main(["blend", str(plain), "--strength", "0.5", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no impasto recipe" in err


def test_the_cli_stylize_strength_and_blend(image_files, tmp_path, capsys):
    out = tmp_path / "out.png"
    tiny = ["--size", "32", "--start-size", "none", "--steps", "2", "-q"]
    assert main(["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(out), *tiny,
                 "--strength", "0.4"]) == 0
    assert read_recipe(out)["config"]["strength"] == 0.4
    assert main(["blend", str(out), "--strength", "0.8"]) == 0
    written = tmp_path / "out-strength80.png"
    assert read_recipe(written)["config"]["strength"] == 0.8
    assert "out-strength80.png" in capsys.readouterr().err
    assert main(["blend", str(out), "--strength", "0.8"]) == 2  # there already: --force to overwrite
    assert main(["blend", str(out), "--strength", "0.8", "--force"]) == 0
    assert main(["stylize", str(image_files["content"]), str(image_files["style"]), "--strength", "1.5"]) == 2
    assert "strength = 1.5 is invalid" in capsys.readouterr().err


def test_blend_keeps_a_prints_crop_its_depth_dpi_and_alpha(tmp_path):
    """A transparent photo painted as a 16-bit print (cropped to the print's proportions): the blend finds the same
    crop, and writes 16 bits, the DPI and the alpha, matching a run made at that strength."""
    import tifffile

    from impasto.samples import sample_content, sample_style

    photo = sample_content(80, 48, seed=1).convert("RGBA")
    a = np.full((48, 80), 255, np.uint8)
    a[:, :30] = 0  # the left part transparent, the right opaque
    a[:, 30:36] = 128
    photo.putalpha(Image.fromarray(a))
    photo.save(tmp_path / "photo.png")
    sample_style(32, 32, seed=2).save(tmp_path / "style.png")
    cfgs = [StyleConfig(print_size="2x1.5in@32dpi", bit_depth=16, steps=1, start_size=None, strength=s)
            for s in (1.0, 0.5)]
    outs = [tmp_path / "full.tif", tmp_path / "half.tif"]
    api.stylize_batch(str(tmp_path / "photo.png"), [str(tmp_path / "style.png")], cfgs, outputs=outs)
    out = api.blend_file(outs[0], 0.5, tmp_path / "blended.tif")
    got, want = tifffile.imread(out), tifffile.imread(outs[1])
    assert got.dtype == np.uint16 and got.shape == want.shape == (48, 64, 4)
    assert np.array_equal(got[..., 3], want[..., 3])  # the crop's alpha, kept
    opaque = want[..., 3] == 65535
    assert np.abs(got[..., :3][opaque].astype(int) - want[..., :3][opaque]).max() <= 2 * 257  # read back at 8 bits
    with Image.open(out) as im:
        assert im.info["dpi"] == pytest.approx((32, 32))
    assert read_recipe(out)["config"]["strength"] == 0.5 and read_recipe(out)["config"]["bit_depth"] == 16
