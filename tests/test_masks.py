"""Masks (Gatys et al. 2017, spatial control): guides at each layer (simple and inside, by hand), the guided Gram by
hand, invariances, two styles on a tiny image, tiles and batches, the keep mask, and every bad mask's one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.api import batch_key
from impasto.cli import main
from impasto.config import StyleConfig
from impasto.core import guides as G
from impasto.core import tiling
from impasto.core.losses import GramLoss
from impasto.core.objective import Objective
from impasto.core.targets import StyleTargets
from impasto.core.terms import _gram, guided_moments, support
from impasto.errors import ConfigError, ImageError
from impasto.masks import MIN_SHARE, prepare_masks, split_colors
from impasto.weights import load_vgg

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def vgg():
    return load_vgg("bundled")


def left(h: int, w: int, split: int, n: int = 1) -> torch.Tensor:
    g = torch.zeros(n, 1, h, w)
    g[..., :split] = 1
    return g


def grey(a: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8), "L")


def texture(rgb, seed: int, size: int = 48) -> Image.Image:
    a = np.random.default_rng(seed).random((size, size, 1)) * 0.6 + 0.4
    return Image.fromarray((a * np.array(rgb)).astype(np.uint8))


# -- guides at each layer ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", G.RULES)
def test_a_guide_reaches_every_layer_at_its_feature_shape(rule):
    g = torch.rand(2, 1, 100, 148)
    for k in LAYERS:
        out = G.layer_guide(g, k, (100, 148), rule)
        assert out.shape == (2, 1, *tiling.feature_shape(k, 100, 148))
        assert out.min() >= 0 and out.max() <= 1


def test_simple_is_the_mean_over_each_positions_pixels():
    g = torch.rand(1, 1, 50, 70, generator=torch.Generator().manual_seed(1))
    out = G.layer_guide(g, "relu3_1", (50, 70), "simple")  # stride 4: 12 x 17 positions
    for i, j in [(0, 0), (5, 9), (11, 16)]:
        assert out[0, 0, i, j] == pytest.approx(float(g[0, 0, 4 * i:4 * i + 4, 4 * j:4 * j + 4].mean()), abs=1e-6)


def test_inside_counts_a_position_only_when_its_whole_field_is_inside():
    # relu3_1: stride 4, reach 13. Position j covers pixels 4j..4j+3 and sees 4j-13..4j+16: inside x < 64 iff j <= 11.
    out = G.layer_guide(left(96, 128, 64), "relu3_1", (96, 128), "inside")
    assert (out[0, 0, :, :12] == 1).all() and (out[0, 0, :, 12:] == 0).all()  # the image's own edges do not erode
    soft = G.layer_guide(left(96, 128, 64), "relu3_1", (96, 128), "simple")
    assert (soft[0, 0, :, :16] == 1).all()  # simple: every position over the region's pixels


def test_inside_keeps_part_of_a_region_too_thin_for_a_deep_layer():
    strip = torch.zeros(1, 1, 128, 128)
    strip[..., 40:72, :] = 1  # 32 px: relu5_1's full reach (85 px) would erase it
    out = G.layer_guide(strip, "relu5_1", (128, 128), "inside")
    simple = G.layer_guide(strip, "relu5_1", (128, 128), "simple")
    assert G.MIN_KEPT * simple.sum() <= out.sum() < simple.sum()


def test_erode_and_dilate_by_hand():
    g = left(9, 12, 6)
    assert (G.erode(g, 2)[..., :4] == 1).all() and (G.erode(g, 2)[..., 4:] == 0).all()
    assert (G.dilate(g, 2)[..., :8] == 1).all() and (G.dilate(g, 2)[..., 8:] == 0).all()
    f = G.feather(g, 1.5)[0, 0, 4]
    assert (f[1:] <= f[:-1]).all() and f[5] > 0.5 > f[6]  # a soft ramp across the border, centred on it


# -- the guided Gram ----------------------------------------------------------------------------------------------
def test_guided_gram_by_hand():
    f = torch.tensor([[[[1.0, 2.0], [0.5, -1.0]], [[3.0, 0.0], [1.0, 2.0]]]], dtype=torch.float64)  # (1, 2, 2, 2)
    g = torch.tensor([[[[1.0, 0.5], [0.0, 0.25]]]], dtype=torch.float64)
    want, mass = torch.zeros(2, 2, dtype=torch.float64), 0.0
    for y in range(2):
        for x in range(2):
            v = f[0, :, y, x]
            want += g[0, 0, y, x] * torch.outer(v, v)
            mass += float(g[0, 0, y, x])
    second, first, positions = guided_moments(f, g)
    torch.testing.assert_close(second[0], want)
    assert float(positions[0]) == mass
    torch.testing.assert_close(GramLoss.stats_from_moments(second, first, positions)[0], want / mass)
    hard = (g > 0.3).double()  # a 0/1 mask: Gatys et al.'s Gram of F ∘ T, divided by the mask's mass
    ft = (f * hard).reshape(2, -1)
    gram = GramLoss.stats_from_moments(*guided_moments(f, hard))[0]
    torch.testing.assert_close(gram, ft @ ft.T / hard.sum())


def test_the_grams_own_backward_and_the_regions_box_change_nothing():
    g = torch.Generator().manual_seed(5)
    flat = torch.rand(2, 3, 7, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(_gram, (flat,))
    f = torch.rand(2, 4, 6, 9, dtype=torch.float64, generator=g, requires_grad=True)
    guide = torch.zeros(2, 1, 6, 9, dtype=torch.float64)
    guide[0, :, 1:4, 2:5], guide[1, :, 2:5, 3:7] = 0.5, 1.0  # per-run guides: the box is their union's
    box = support(guide)
    assert box == (1, 5, 2, 7)
    for a, b in zip(guided_moments(f, guide, box), guided_moments(f, guide)):
        torch.testing.assert_close(a, b)
    grads = [torch.autograd.grad(sum(m.sum() for m in guided_moments(f, guide, w)), f)[0] for w in (box, None)]
    torch.testing.assert_close(*grads)
    assert support(torch.ones(1, 1, 6, 9)) is None  # a whole-image guide: no box


def test_a_regions_gram_ignores_the_rest_of_the_image():
    g = torch.Generator().manual_seed(2)
    f = torch.rand(1, 8, 6, 10, generator=g)
    guide = left(6, 10, 4)
    gram = GramLoss.stats_from_moments(*guided_moments(f, guide))
    other = f.clone()
    other[..., 4:] = torch.rand(1, 8, 6, 6, generator=g) * 5  # the rest changes
    torch.testing.assert_close(GramLoss.stats_from_moments(*guided_moments(other, guide)), gram)
    wider = torch.cat([f, torch.rand(1, 8, 6, 30, generator=g)], dim=-1)  # the image grows: mass, not positions
    torch.testing.assert_close(GramLoss.stats_from_moments(*guided_moments(wider, torch.cat(
        [guide, torch.zeros(1, 1, 6, 30)], dim=-1))), gram)


def test_inside_makes_a_regions_grams_blind_to_every_pixel_outside_it(vgg):
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(3))
    y = x.clone()
    y[..., 56:] = torch.rand(1, 3, 64, 40)  # every pixel outside the region (x < 56) changes
    fx, fy = vgg(x, layers), vgg(y, layers)
    moved = {}
    for rule in G.RULES:
        for k in layers:
            guide = G.layer_guide(left(64, 96, 56), k, (64, 96), rule)
            a = GramLoss.stats_from_moments(*guided_moments(fx[k], guide))
            b = GramLoss.stats_from_moments(*guided_moments(fy[k], guide))
            moved[rule, k] = float((a - b).abs().max() / a.abs().max())
    assert all(moved["inside", k] < 1e-5 for k in layers), moved
    assert moved["simple", "relu3_1"] > 1e-3, moved  # simple: the border positions see across it


# -- the method on a tiny image -----------------------------------------------------------------------------------
def test_two_styles_on_two_halves_follow_their_styles(content_img):
    red, blue = texture([255, 40, 20], 0), texture([20, 60, 255], 1)
    half = np.zeros((48, 64))
    half[:, :32] = 1
    kw = dict(size=64, steps=40, start_size=None, style_weight=30, progress=False)

    def redness(masks):
        a = np.asarray(impasto.stylize(content_img, [red, blue], masks=masks, **kw).image).astype(float)
        return [float((a[:, s, 0] - a[:, s, 2]).mean()) for s in (slice(0, 28), slice(36, 64))]

    lft, rgt = redness([grey(half), grey(1 - half)])
    assert lft - rgt > 40, (lft, rgt)  # red on the left, blue on the right
    lft2, rgt2 = redness([grey(1 - half), grey(half)])
    assert rgt2 - lft2 > 40, (lft2, rgt2)  # swapped masks, swapped halves


def _mask_files(tmp_path, h: int, w: int) -> dict[str, str]:
    a = np.zeros((h, w))
    a[:, : w // 2] = 1
    k = np.zeros((h, w))
    k[h // 4: h // 2, w // 8: w // 4] = 1
    paths = {"a": tmp_path / "a.png", "b": tmp_path / "b.png", "keep": tmp_path / "keep.png"}
    grey(a).save(paths["a"])
    grey(1 - a).resize((w // 3, h // 3)).save(paths["b"])  # any size: resized to the content
    grey(k).save(paths["keep"])
    return {k: str(v) for k, v in paths.items()}


def test_masks_with_tiles_give_the_whole_image_gradient(vgg, tmp_path):
    """A batch of a masked run (two regions and a keep mask, inside rule) and an unmasked one, on an image several
    tiles wide: the tiled gradient is the whole image's."""
    g = torch.Generator().manual_seed(11)
    content = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 100, generator=g), size=(64, 400), mode="bilinear")
    styles = [torch.rand(1, 3, 48, 48, generator=g), torch.rand(1, 3, 40, 56, generator=g)]
    files = _mask_files(tmp_path, 64, 400)
    cfg = StyleConfig(size=400, start_size=None, steps=2, precision="fp32")
    cfgs = [cfg.replace(masks=(files["a"], files["b"]), keep_mask=files["keep"], mask_rule="inside"),
            cfg.replace(mask_rule="inside")]
    guides = prepare_masks(cfgs, (64, 400), ["s1", "s2"], [(48, 48), (40, 56)], CPU).guides
    assert guides is not None and guides.rule == "inside"
    assert guides is not None and guides.regions[0].guide.shape == (2, 1, 64, 400)
    x0 = (content + 0.05 * torch.randn(content.shape, generator=g)).clamp(0, 1)

    def grad(tile):
        obj = Objective(vgg, content, styles, [c.replace(tile_size=tile) for c in cfgs], guides)
        xs = [x0.clone().requires_grad_(True) for _ in cfgs]
        if obj.tile:
            t = obj.tiled_backward(lambda b: torch.cat([x[..., b[0]:b[1], b[2]:b[3]] for x in xs]), (64, 400), (0, 48))
        else:
            t = obj(torch.cat(xs))
            t["total"].sum().backward()
        return torch.cat([x.grad for x in xs]), t

    g_whole, t_whole = grad(0)
    g_tiled, t_tiled = grad(64)
    torch.testing.assert_close(t_tiled["style"], t_whole["style"], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(g_tiled, g_whole, rtol=1e-3, atol=g_whole.abs().max().item() * 1e-5)


def test_a_run_without_masks_keeps_its_own_loss_in_a_masked_batch(vgg, tmp_path):
    g = torch.Generator().manual_seed(4)
    content, x = torch.rand(1, 3, 48, 64, generator=g), torch.rand(2, 3, 48, 64, generator=g)
    styles = [torch.rand(1, 3, 48, 48, generator=g), torch.rand(1, 3, 40, 56, generator=g)]
    files = _mask_files(tmp_path, 48, 64)
    plain = StyleConfig(size=64, start_size=None, precision="fp32", style_blend=(0.3, 0.7))
    cfgs = [plain.replace(masks=(files["a"], files["b"])), plain]
    assert batch_key(cfgs[0]) == batch_key(cfgs[1])  # masks may differ within a batch (a sweep axis)
    assert batch_key(plain) != batch_key(plain.replace(style_masks=(files["a"], "none")))
    guides = prepare_masks(cfgs, (48, 64), ["s1", "s2"], [(48, 48), (40, 56)], CPU).guides
    together = Objective(vgg, content, styles, cfgs, guides)(x)
    alone = Objective(vgg, content, styles, [plain])(x[1:])
    torch.testing.assert_close(together["style"][1:], alone["style"], rtol=1e-5, atol=0)
    assert float((together["style"][0] - alone["style"][0]).abs()) > 1e-4  # the masked run's loss is its own


def test_the_keep_mask_keeps_the_photos_pixels_with_a_feathered_seam(content_img, style_img):
    k = np.zeros((48, 64))
    k[12:36, 8:28] = 1
    r = impasto.stylize(content_img, style_img, keep_mask=grey(k), size=64, steps=20, start_size=None,
                        style_weight=100, mask_feather=0.03, progress=False)
    out, photo = np.asarray(r.image).astype(float), np.asarray(content_img.resize((64, 48), Image.LANCZOS)).astype(float)
    assert np.abs(out - photo)[k > 0].max() <= 1.0  # kept: the photo's pixels, to rounding
    assert np.abs(out - photo)[:, 44:].mean() > 3  # elsewhere: painted
    assert r.recipe["inputs"]["keep_mask"] == "<PIL image>" and r.config.keep_mask is None
    keep = prepare_masks([r.config], (48, 64), ["s"], [(48, 48)], CPU, {"keep_mask": grey(k)}).keeps[0]
    row = keep[0, 0, 24, 28:40]
    assert row[0] > 0.99 and (row[1:] <= row[:-1]).all() and row[-1] < 0.5  # a ramp outside the mask


def test_style_masks_take_the_style_from_part_of_the_painting(vgg):
    style = torch.zeros(1, 3, 48, 96)
    style[:, 0, :, :48], style[:, 2, :, 48:] = 1.0, 1.0  # red | blue
    red = torch.zeros(1, 3, 48, 48)
    red[:, 0] = 1.0
    run = lambda img, layers: vgg(img, layers)
    content = torch.rand(1, 3, 48, 96)
    whole = StyleTargets([style], 1.0).at(run, content, ["relu1_1"], "gram", "relative", 0)[0]["relu1_1"]
    part = StyleTargets([style], 1.0, guides=[left(48, 96, 48)], rule="inside").at(
        run, content, ["relu1_1"], "gram", "relative", 0)[0]["relu1_1"]
    only_red = StyleTargets([red], 0.5).at(run, content, ["relu1_1"], "gram", "relative", 0)[0]["relu1_1"]
    assert (part - only_red).norm() < 0.05 * (whole - only_red).norm()


# -- colour-coded images, alpha, sizes ----------------------------------------------------------------------------
def test_a_colour_coded_image_splits_in_reading_order_despite_jpeg_and_antialiasing(tmp_path):
    a = np.zeros((60, 80, 3), np.uint8)
    a[:], a[30:] = (250, 120, 10), (20, 40, 230)  # orange on top (style 1), blue below (style 2)
    im = Image.fromarray(a).resize((160, 120), Image.BILINEAR)  # blended colours along the border
    im.save(tmp_path / "regions.jpg", quality=70)
    masks, colours = split_colors(str(tmp_path / "regions.jpg"), "regions.jpg", 2, (30, 40), CPU)
    assert colours[0].startswith("#f") and masks[0][0, 0, :14].min() == 1 and masks[0][0, 0, 16:].max() == 0
    assert torch.equal(masks[0] + masks[1], torch.ones(1, 1, 30, 40))


def test_alpha_and_grey_masks_of_any_size():
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere: only the alpha says where
    rgba[:, :20, 3] = 255
    sizes = [(48, 48), (40, 56)]
    m = prepare_masks([StyleConfig(mask_feather=0)], (48, 64), ["s1", "s2"], sizes, CPU,
                      {"masks": [Image.fromarray(rgba, "RGBA"), grey(np.ones((10, 10)) * 0.5)]})
    g = m.guides.regions[0].guide[0, 0]
    assert g[:, :30].min() > 0.6 and g[:, 34:].max() == 0  # alpha, resized from 40 to 64 px wide
    g2 = m.guides.regions[1].guide[0, 0]
    assert g2[:, 40:].min() == pytest.approx(127 / 255)  # grey: partly this style, as given
    assert g2[:, :30].max() == pytest.approx(127 / 255 / (1 + 127 / 255))  # overlaps share: divided by their sum


# -- bad masks: one line each, nothing written --------------------------------------------------------------------
@pytest.fixture
def bad_inputs(tmp_path, image_files):
    half = np.zeros((40, 40))
    half[:20] = 1
    grey(half).save(tmp_path / "top.png")
    grey(np.zeros((40, 40))).save(tmp_path / "black.png")
    (tmp_path / "notes.png").write_text("not a picture")
    three = np.zeros((40, 60, 3), np.uint8)
    three[:, 20:40], three[:, 40:] = (255, 0, 0), (0, 0, 255)
    Image.fromarray(three).save(tmp_path / "three.png")
    return tmp_path, [str(image_files[k]) for k in ("content", "style", "style2")]


@pytest.mark.parametrize("flags,message", [
    (["--masks", "top.png"], "masks: 1 mask for 2 style images; give one mask per style image"),
    (["--masks", "top.png", "black.png"], "mask 2 (black.png) is empty (black or transparent): style 2"),
    (["--masks", "top.png", "notes.png"], "mask 2 (notes.png): not an image Pillow can read"),
    (["--masks", "top.png", "missing.png"], "mask 2 (missing.png): no such file"),
    (["--mask-colors", "three.png"], "mask_colors (three.png): 3 colours (#000000, #ff0000, #0000ff) for 2 style"),
    (["--mask-colors", "top.png", "--masks", "top.png", "top.png"], "masks and mask_colors are both set"),
    (["--masks", "top.png", "top.png", "--keep-mask", "black.png"], "keep_mask (black.png) is empty"),
    (["--masks", "top.png", "top.png", "--keep-mask", "top.png"], "mask 1 (top.png) lies inside keep_mask"),
    (["--style-masks", "top.png"], "style_masks: 1 mask for 2 style images"),
    (["--mask-feather", "2"], "mask_feather = 2.0 is invalid"),
])
def test_each_bad_mask_is_one_line_and_nothing_is_written(bad_inputs, capsys, monkeypatch, flags, message):
    folder, inputs = bad_inputs
    monkeypatch.chdir(folder)
    assert main(["stylize", *inputs, *flags, "-o", "out.png", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("impasto: error: ") and message in err and "\n" not in err, err
    assert not list(folder.glob("out*"))


def test_bad_masks_raise_from_python(content_img, style_img, style2_img):
    with pytest.raises(ConfigError, match="1 mask for 2 style images"):
        impasto.stylize(content_img, [style_img, style2_img], masks=[grey(np.ones((8, 8)))], progress=False)
    with pytest.raises(ImageError, match="is empty"):
        impasto.stylize(content_img, [style_img, style2_img], masks=[grey(np.ones((8, 8))), grey(np.zeros((8, 8)))],
                        progress=False)
    assert MIN_SHARE < 0.01


# -- the command line and the API ---------------------------------------------------------------------------------
def test_cli_masks_with_coarse_to_fine_and_colour_preservation(tmp_path, image_files, capsys):
    files = _mask_files(tmp_path, 48, 64)
    out = tmp_path / "out.png"
    args = ["stylize", str(image_files["content"]), str(image_files["style"]), str(image_files["style2"]),
            "--masks", files["a"], files["b"], "--keep-mask", files["keep"], "--preserve-color", "luminance",
            "--size", "48", "--start-size", "34", "--steps", "2", "-o", str(out), "-q"]
    assert main(args) == 0
    assert main(["recipe", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"--masks {files['a']} {files['b']} --keep-mask {files['keep']}" in text
    assert main(["stylize", str(image_files["content"]), str(image_files["style"]), str(image_files["style2"]),
                 "--mask-colors", files["a"], "--size", "32", "--start-size", "none", "--steps", "1",
                 "-o", str(tmp_path / "colours.png"), "-q"]) == 0
    assert "mask colours: #ffffff → " in capsys.readouterr().err


def test_a_sweep_varies_the_masks_in_one_batch(tmp_path, image_files):
    from impasto.experiments.spec import parse_experiment

    files = _mask_files(tmp_path, 48, 64)
    exp = parse_experiment({"base": {"size": 32, "start_size": "none", "steps": 1},
                            "grid": {"masks": [[files["a"], files["b"]], [files["b"], files["a"]], "none"]}})
    assert [v.config.masks for v in exp.variants] == [(files["a"], files["b"]), (files["b"], files["a"]), None]
    assert len({batch_key(v.config) for v in exp.variants}) == 1  # one batch through VGG
    result = impasto.sweep(exp, content=str(image_files["content"]),
                           styles=[str(image_files["style"]), str(image_files["style2"])],
                           output=tmp_path / "study", plots=False, progress=False, refresh=None)
    assert result.status == "done"
    images = [np.asarray(result[v.name].image).astype(float) for v in exp.variants]
    assert np.abs(images[0] - images[1]).mean() > 0.1  # the masks changed the pictures (after one step)


def test_a_video_keeps_its_masks_on_every_frame(tmp_path, content_img, style_img, style2_img):
    from impasto.frames import FrameRunner

    files = _mask_files(tmp_path, 48, 64)
    cfg = StyleConfig(size=64, start_size=None, steps=2, masks=(files["a"], files["b"]), keep_mask=files["keep"])
    runner = FrameRunner(content_img, [style_img, style2_img], cfg)
    assert runner.guides is not None and len(runner.guides.regions) == 2 and runner.keep is not None
    out = np.asarray(runner.run(content_img).picture).astype(float)
    photo = np.asarray(content_img.resize((64, 48), Image.LANCZOS)).astype(float)
    kept = np.asarray(Image.open(files["keep"])) > 0
    assert np.abs(out - photo)[kept].max() <= 1.0
