"""Transparency, prints and depth through whole runs: an RGBA photo comes out with its alpha (coarse-to-fine and
tiles; PNG, WebP, TIFF; the CLI, a batch and the web page), its transparent pixels take no part in the losses (the
mask guides), a style's alpha limits its statistics, JPEG is refused or flattened, a print is written at its size,
depth and DPI, and the preflight picks tiles for a print that does not fit. Tiny images, few steps."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageDraw

from impasto import StyleConfig, stylize
from impasto.errors import OutputError
from impasto.inputs import finish, prepare
from impasto.io.recipe import read_recipe
from impasto.preflight import pick_tiles
from impasto.samples import sample_content, sample_style

CPU = torch.device("cpu")


def _rgba(w: int = 96, h: int = 64) -> Image.Image:
    """The sample photo with an ellipse opaque, soft-edged, and everything else fully transparent."""
    im = sample_content(w, h, seed=1).convert("RGBA")
    a = Image.new("L", (w, h), 0)
    ImageDraw.Draw(a).ellipse((w // 8, h // 8, w * 5 // 8, h * 7 // 8), fill=255)
    a.paste(128, (w // 8, h // 2 - 2, w // 8 + 4, h // 2 + 2))  # a half-transparent patch at the edge
    im.putalpha(a)
    return im


@pytest.fixture(scope="module")
def rgba_run(tmp_path_factory):
    """One RGBA run through coarse-to-fine and tiles (96 px wide, 64 px tiles), saved as PNG."""
    d = tmp_path_factory.mktemp("rgba")
    photo = _rgba()
    photo.save(d / "photo.png")
    sample_style(48, 48, seed=2).save(d / "style.png")
    r = stylize(d / "photo.png", d / "style.png", size=96, start_size=64, tile_size=64, steps=1, first_steps=1,
                progress=False, output=d / "out.png")
    return d, photo, r


def test_an_rgba_photo_keeps_its_alpha_through_coarse_to_fine_and_tiles(rgba_run):
    d, photo, r = rgba_run
    alpha = np.asarray(photo.getchannel("A"))
    assert r.config.tile_size == 64 and len({h["scale"] for h in r.history}) >= 2  # coarse to fine, tiled
    assert r.image.mode == "RGBA" and r.pixels is not None and r.pixels.shape == (4, 64, 96)
    for ext in (".png", ".webp", ".tif"):
        out = d / f"again{ext}"
        r.save(out)
        with Image.open(out) as im:
            assert im.mode == "RGBA" and np.array_equal(np.asarray(im.getchannel("A")), alpha), ext
        assert read_recipe(out)["config"]["tile_size"] == 64
    with Image.open(d / "out.png") as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    painted = alpha == 255
    assert np.abs(rgb[painted] - np.asarray(photo.convert("RGB"), dtype=np.float64)[painted]).mean() > 1  # painted


def test_the_alpha_is_the_mask_machinerys_ignore_mask(tmp_path):
    """The photo's alpha reaches the engine as the guides a keep mask uses: 0 where fully transparent, in every
    region and in the content term; with a keep mask as well, the two multiply."""
    photo, style = _rgba(64, 48), sample_style(32, 32, seed=2)
    opaque = torch.from_numpy((np.asarray(photo.getchannel("A")) > 0).astype(np.float32))[None, None]
    p = prepare(photo, style, [StyleConfig(size=64)], CPU)
    assert torch.equal(p.guides.content, opaque) and torch.equal(p.guides.regions[0].guide, opaque)
    keep = Image.new("L", photo.size, 0)
    keep.paste(255, (0, 0, 16, 48))
    keep.save(tmp_path / "keep.png")
    p = prepare(photo, style, [StyleConfig(size=64, keep_mask=str(tmp_path / "keep.png"), mask_feather=0)], CPU)
    k = (torch.from_numpy(np.asarray(keep, dtype=np.float32)) / 255)[None, None]
    assert torch.allclose(p.guides.regions[0].guide, (1 - k) * opaque)
    assert torch.allclose(p.guides.content, (1 + 3 * k) * opaque)
    assert p.alpha is not None and p.alpha.shape == (1, 1, 48, 64)


def test_a_styles_alpha_limits_its_statistics_to_its_visible_part():
    style = sample_style(48, 48, seed=2).convert("RGBA")
    a = Image.new("L", style.size, 255)
    a.paste(0, (0, 0, 24, 48))
    style.putalpha(a)
    p = prepare(sample_content(64, 48, seed=1), style, [StyleConfig(size=64)], CPU)
    [g] = p.style_guides
    sh, sw = p.styles[0].shape[-2:]
    want = (np.asarray(a.resize((sw, sh), Image.Resampling.LANCZOS)) > 0).astype(np.float32)
    assert torch.equal(g[0, 0], torch.from_numpy(want)) and p.alpha is None and p.guides is None


def test_jpeg_of_a_transparent_result_is_refused_before_the_run_unless_flattened(tmp_path, monkeypatch):
    import impasto.api as api

    photo, style = _rgba(64, 48), sample_style(32, 32, seed=2)
    ran = []
    real = api._run
    monkeypatch.setattr(api, "_run", lambda *a, **k: ran.append(1) or real(*a, **k))
    with pytest.raises(OutputError, match=r"is transparent and JPEG cannot hold transparency; write \.png, \.webp or "
                                          r"\.tif to keep it, or give --background COLOUR"):
        stylize(photo, style, size=64, start_size=None, steps=1, output=tmp_path / "x.jpg", progress=False)
    assert not ran and not list(tmp_path.iterdir())
    r = stylize(photo, style, size=64, start_size=None, steps=1, output=tmp_path / "x.jpg", progress=False,
                background="#ff0000")
    with Image.open(tmp_path / "x.jpg") as im:
        assert im.mode == "RGB"
        corner = np.asarray(im, dtype=np.float64)[:3, :3].reshape(-1, 3).mean(0)
    assert np.abs(corner - [255, 0, 0]).max() < 8 and r.pixels.shape[0] == 3


def test_finish_flattens_onto_the_background_as_alpha_compositing_does():
    rgb, alpha = torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8)
    bg = torch.tensor([0.2, 0.4, 1.0]).view(3, 1, 1)
    out = finish(StyleConfig(background="#3366ff"), rgb, alpha)
    assert torch.allclose(out, rgb * alpha[0] + bg * (1 - alpha[0]))
    assert torch.equal(finish(StyleConfig(), rgb, alpha), torch.cat([rgb, alpha[0]]))
    assert finish(StyleConfig(), rgb, None) is rgb


def test_the_cli_writes_a_16_bit_print_with_its_dpi_recipe_and_alpha(tmp_path):
    photo = _rgba(80, 48)  # 5:3, the print 4:3: cropped at the sides
    photo.save(tmp_path / "photo.png")
    sample_style(32, 32, seed=2).save(tmp_path / "style.png")
    run = subprocess.run([sys.executable, "-m", "impasto", "stylize", "photo.png", "style.png", "--print",
                          "2x1.5in@32dpi", "-o", "print.tif", "--bit-depth", "16", "--steps", "1", "--start-size",
                          "none", "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    got = tifffile.imread(tmp_path / "print.tif")
    assert got.dtype == np.uint16 and got.shape == (48, 64, 4)
    with Image.open(tmp_path / "print.tif") as im:
        assert im.info["dpi"] == pytest.approx((32, 32))
    recipe = read_recipe(tmp_path / "print.tif")
    assert recipe["config"]["print_size"] == "2x1.5in@32dpi" and recipe["config"]["bit_depth"] == 16
    assert any("cropped to the print's proportions" in n for n in recipe["notes"])
    crop = np.asarray(photo.getchannel("A").crop((8, 0, 72, 48)), dtype=np.float64)  # the centred 4:3 part
    assert np.abs(got[..., 3] / 257 - crop).max() <= 1  # the crop's alpha, not a squeeze of the whole
    shown = subprocess.run([sys.executable, "-m", "impasto", "recipe", "print.tif"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "--print-size 2x1.5in@32dpi" in shown.stdout and "--bit-depth 16" in shown.stdout


@pytest.mark.parametrize(("argv", "says"), [
    (["-o", "x.jpg", "--bit-depth", "16"], "JPEG holds 8 bits a channel, not 16"),
    (["-o", "x.webp", "--bit-depth", "16"], "WebP holds 8 bits a channel, not 16"),
    (["--bit-depth", "12"], "bit_depth = 12 is invalid: choose 8 or 16"),
    (["--print", "20x30cm@0dpi"], "the DPI must be more than 0"),
    (["--print", "20x30ft@300dpi"], "unknown unit 'ft'"),
    (["--background", "nope"], "give a colour name"),
])
def test_bad_output_values_are_one_line_before_any_work(tmp_path, argv, says):
    run = subprocess.run([sys.executable, "-m", "impasto", "stylize", "photo.png", "style.png", *argv],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and says in run.stderr, run.stderr


def test_a_print_that_does_not_fit_gets_tiles_and_says_so(monkeypatch):
    import impasto.preflight as pf

    cfgs = [StyleConfig(print_size="20x30cm@300dpi")]
    size = cfgs[0].result_size(1, 1)
    monkeypatch.setattr(pf, "available_memory", lambda device: 6 * 2**30)
    out, line = pick_tiles(cfgs, size, CPU)
    assert 0 < out[0].tile_size < max(size) and pf._need(out, size, out[0].tile_size) <= 0.9 * 6 * 2**30
    assert pf._need(cfgs, size, 0) > 0.9 * 6 * 2**30  # the whole print would not have fitted
    assert line.startswith("the 2362x3543 px print needs about") and f"--tile-size {out[0].tile_size}" in line
    monkeypatch.setattr(pf, "available_memory", lambda device: 512 * 2**30)
    out, line = pick_tiles(cfgs, size, CPU)
    assert out[0].tile_size == 0 and "fits in cpu memory whole" in line
    assert pick_tiles([StyleConfig()], (512, 384), CPU) == ([StyleConfig()], None)  # not a print: nothing to decide


def test_the_web_page_keeps_an_uploads_transparency(tmp_path):
    pytest.importorskip("fastapi")
    from test_web import make_client, submit, wait_for

    buf = io.BytesIO()
    _rgba(64, 48).save(buf, "PNG")
    style = io.BytesIO()
    sample_style(32, 32, seed=2).save(style, "PNG")
    config = {"size": 32, "start_size": None, "steps": 1}
    with make_client(tmp_path / "results") as client:
        job = submit(client, {"content": buf.getvalue(), "style": style.getvalue()}, config).json()
        wait_for(client, job["id"], lambda j: j["status"] in ("done", "failed"), "the job to end")
        resp = client.get(f"/api/jobs/{job['id']}/image", params={"download": "true"})
    got = Image.open(io.BytesIO(resp.content))
    want = np.asarray(_rgba(64, 48).getchannel("A").resize((32, 24), Image.Resampling.LANCZOS), dtype=np.float64)
    assert got.mode == "RGBA" and np.abs(np.asarray(got.getchannel("A"), dtype=np.float64) - want).mean() <= 2
    assert np.asarray(got.getchannel("A"))[0, 0] == 0 and np.asarray(got.getchannel("A"))[12, 10] == 255
    (tmp_path / "got.png").write_bytes(resp.content)
    assert read_recipe(tmp_path / "got.png")["status"] == "done"


def test_save_picture_writes_a_results_float_pixels_at_its_depth(tmp_path):
    """What ``impasto batch`` and Result.save write: the float pixels (alpha included), quantised once, at the config's
    bit depth, with the print's DPI; a Result without pixels writes its PIL image."""
    from impasto.api import Result, save_picture
    from impasto.io.encode import quantise

    pixels = torch.rand(4, 16, 20)
    cfg = StyleConfig(bit_depth=16, print_size="20x16in@1dpi")
    r = Result(image=Image.new("RGB", (20, 16)), config=cfg, history=[], status="done", message="", elapsed=0.0,
               recipe={"status": "done"}, pixels=pixels)
    save_picture(r, tmp_path / "a.tif", {"status": "done", "batch": {"pair": "a"}})
    assert np.array_equal(tifffile.imread(tmp_path / "a.tif"), quantise(pixels.permute(1, 2, 0).numpy(), 16))
    assert read_recipe(tmp_path / "a.tif")["batch"] == {"pair": "a"}
    with Image.open(tmp_path / "a.tif") as im:
        assert im.info["dpi"] == pytest.approx((1, 1))
    r.pixels = None
    save_picture(r, tmp_path / "b.png")
    with Image.open(tmp_path / "b.png") as im:
        assert im.mode == "RGB" and read_recipe(tmp_path / "b.png") == {"status": "done"}


def test_impasto_blend_keeps_a_prints_crop_alpha_and_dpi(tmp_path):
    """The other half of issue 24 meets this one: re-blending a transparent print finds its photo through the
    print's crop, and the blend keeps the alpha, the DPI and the bit depth."""
    from impasto.reblend import blend_file

    photo = _rgba(80, 48)  # cropped at the sides for a 4:3 print
    photo.save(tmp_path / "photo.png")
    stylize(tmp_path / "photo.png", sample_style(32, 32, seed=2), print_size="2x1.5in@32dpi", start_size=None,
            steps=1, bit_depth=16, output=tmp_path / "print.png", progress=False)
    out = blend_file(tmp_path / "print.png", 0.5)
    with Image.open(out) as im, Image.open(tmp_path / "print.png") as made:
        assert im.mode == "RGBA" and im.size == (64, 48) and im.info["dpi"] == pytest.approx((32, 32), abs=0.01)
        assert np.array_equal(np.asarray(im.getchannel("A")), np.asarray(made.getchannel("A")))
    recipe = read_recipe(out)
    assert recipe["config"]["strength"] == 0.5 and recipe["config"]["bit_depth"] == 16
    with pytest.raises(OutputError, match="JPEG cannot hold transparency"):
        blend_file(tmp_path / "print.png", 0.5, tmp_path / "flat.jpg")
