"""Style by neighbours (core/neighbours.py, core/neighbour_term.py): the search against brute force, invariances, a
one-patch style, masks and style masks, tiles against the whole image, a float64 gradcheck, and every option's path
through coarse-to-fine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.config import StyleConfig
from impasto.core import neighbours as N
from impasto.core import tiling
from impasto.core.objective import Guides, Objective, Region
from impasto.core.optimize import optimize
from impasto.core.targets import StyleTargets
from impasto.errors import ConfigError
from impasto.io.recipe import read_recipe
from impasto.presets import NEIGHBOUR_LAYERS
from impasto.weights import load_vgg

NB = dict(style_loss="neighbour", precision="fp32")
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@pytest.fixture(scope="module")
def vgg():
    return load_vgg("bundled")


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# -- the search -------------------------------------------------------------------------------------------------
def brute_force(q: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Centred cosine by the definition, one pair at a time (float64)."""
    q, s = q.double() - q.double().mean(0), s.double() - s.double().mean(0)
    d = torch.tensor([[float(torch.dot(a, b) / (a.norm() * b.norm())) for b in s] for a in q])
    return d.argmax(1)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_the_search_finds_the_brute_force_neighbours(chunk):
    q, s = rand(37, 12, seed=1) - 0.3, rand(53, 12, seed=2)
    assert torch.equal(N.nearest(q, s, chunk=chunk), brute_force(q, s))


def test_the_search_in_the_style_principal_directions_is_exact_when_they_span_the_data():
    s = rand(80, 6, seed=3) @ rand(6, 40, seed=4)  # rank 6 in 40 dimensions
    q = rand(30, 6, seed=5) @ rand(6, 40, seed=4)
    basis = N.principal(s, 8)
    assert basis is not None and basis.shape == (40, 8)
    assert torch.equal(N.nearest(q, s, basis), N.nearest(q, s))


def _three_kinds(seed=11):
    """Style rows: 200 near direction A, 150 near B (what recurs), 3 near C (a one-off, like a portrait's eye)."""
    g = torch.Generator().manual_seed(seed)
    a, b, c = torch.eye(24)[:3]
    rows = [a + 0.05 * torch.randn(200, 24, generator=g), b + 0.05 * torch.randn(150, 24, generator=g),
            c + 0.05 * torch.randn(3, 24, generator=g)]
    return torch.cat(rows), (a, b, c)


def test_rarity_scores_a_one_off_feature_high_and_what_recurs_zero():
    s, _ = _three_kinds()
    r = N.rarity(s)
    assert r.shape == (353,) and bool((r >= 0).all())
    assert float(r[-3:].min()) > 0.5  # the one-off rows: far from their 12 most similar rows
    assert float(r[:350].median()) == 0.0 and float(r[:350].max()) < 0.1
    assert torch.allclose(N.rarity(s * 7.0), r, atol=1e-5)  # a scale of the features changes nothing


def test_the_rarity_penalty_takes_recurring_paint_over_a_one_off_match():
    s, (a, b, c) = _three_kinds()
    # a probe nearest to the one-off rows with A close behind, among queries like the style (so centring is benign)
    q = torch.cat([(0.7 * c + 0.71 * a)[None], s[:350]])
    plain = N.nearest(q, s)
    assert int(plain[0]) >= 350
    assert torch.equal(N.nearest(q, s, penalty=torch.zeros(353)), plain)
    pen = 1.0 * N.rarity(s)
    picked = N.nearest(q, s, penalty=pen, chunk=5)
    assert int(picked[0]) < 200  # recurring A, not the one-off
    assert float((picked[1:] == plain[1:]).float().mean()) > 0.9  # what was already recurring keeps its match
    qc, sc = q.double() - q.double().mean(0), s.double() - s.double().mean(0)
    oracle = ((qc / qc.norm(dim=1, keepdim=True)) @ (sc / sc.norm(dim=1, keepdim=True)).t() - pen.double()).argmax(1)
    assert torch.equal(picked, oracle)  # cos − penalty, by the definition


def test_a_global_scale_of_the_features_changes_nothing():
    feats = {k: rand(1, c, 32 // N.tiling.stride(k) * 2, 48 // N.tiling.stride(k) * 2, seed=i)
             for i, (k, c) in enumerate(zip(LAYERS, (4, 6, 8, 10)))}
    scaled = {k: 37.5 * v for k, v in feats.items()}
    per_layer = {k: v * (i + 1.5) for i, (k, v) in enumerate(feats.items())}  # and each layer by its own factor
    cols = []
    for f in (feats, scaled, per_layer):
        sc = N.layer_scales([f], LAYERS)
        cols.append(N.hypercolumns(f, LAYERS, torch.tensor([[sc[k] for k in LAYERS]]), (16, 24)))
    assert torch.allclose(cols[0], cols[1], rtol=1e-5) and torch.allclose(cols[0], cols[2], rtol=1e-5)


def test_subsample_spreads_evenly_and_keeps_all_below_the_limit():
    assert N.subsample(100, 200) is None and N.subsample(100, 0) is None
    idx = N.subsample(1000, 100)
    assert idx is not None and len(idx) == 100 and len(set(idx.tolist())) == 100 and int(idx.max()) < 1000


def test_hypercolumns_bring_every_layer_to_the_grid():
    f = {"relu1_1": torch.ones(1, 2, 36, 52), "relu4_1": torch.ones(1, 3, 4, 6), "relu5_1": torch.ones(1, 1, 2, 3)}
    hc = N.hypercolumns(f, list(f), torch.ones(1, 3), N.grid_shape(36, 52))
    assert hc.shape == (1, 6, 9, 13) and torch.allclose(hc, torch.ones_like(hc))


# -- the term in the objective ----------------------------------------------------------------------------------
def objective(vgg, content, styles, cfgs, guides=None, style_guides=None):
    targets = StyleTargets(styles, 1.0, guides=style_guides)
    return Objective(vgg, content, targets, cfgs, guides)


def test_a_style_of_one_repeated_patch_gives_that_patchs_colours_everywhere(vgg):
    patch = torch.zeros(1, 3, 8, 8)
    patch[:, 0, :4], patch[:, 2, 4:] = 1.0, 1.0  # red over blue: no green anywhere
    style = patch.repeat(1, 1, 8, 8)  # 64 × 64
    content = rand(1, 3, 48, 64, seed=6) * 0.4 + 0.3  # grey-green noise
    content[:, 1] += 0.2
    cfg = StyleConfig(size=64, start_size=None, steps=80, content_weight=0.0, style_weight=1.0, lr=0.05, tv_weight=0.0,
                      **NB)  # the style term alone: no TV smoothing the patch away
    state = optimize(vgg, content, [style], [cfg])
    out = state.images[0]
    assert float(out[:, 1].mean()) < 0.5 * float(content[:, 1].mean())  # the green is gone
    assert float(out[:, [0, 2]].amax(1).mean()) > float(out[:, 1].mean()) + 0.2  # red or blue instead


def test_a_region_never_takes_a_neighbour_from_another_regions_style(vgg):
    content = rand(1, 3, 64, 320, seed=7)
    red, blue = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    red[:, 0], blue[:, 2] = rand(64, 64, seed=8), rand(64, 64, seed=9)
    left = torch.zeros(1, 1, 64, 320)
    left[..., :160] = 1
    cfg = StyleConfig(size=320, start_size=None, steps=1, **NB)
    x = (content + 0.1 * rand(1, 3, 64, 320, seed=10)).clamp(0, 1)

    def left_gradient(second):
        guides = Guides([Region(left, blend=(1.0, 0.0)), Region(1 - left, blend=(0.0, 1.0))])
        obj = objective(vgg, content, [red, second], [cfg], guides)
        obj.prepare(x)
        y = x.clone().requires_grad_(True)
        obj(y)["style"].sum().backward()
        return y.grad[..., :160 - 2 * tiling.reach("relu4_1")]  # beyond the reach of the right region's locations

    a, b = left_gradient(blue), left_gradient(torch.flip(blue, (-1,)) * 0.3 + 0.5)
    # equal up to float32 rounding (oneDNN's convolution backward sums in blocks): when the left region's loss did
    # depend on the other style (as when the layers were normalised by the styles' norms) they differed by ~10%
    assert a.abs().max() > 0 and torch.allclose(a, b, rtol=1e-3, atol=1e-5 * float(a.abs().max()))


def test_a_style_mask_limits_the_neighbours_to_its_part(vgg):
    content = torch.zeros(1, 3, 64, 128)  # the style's size: it is not resized
    content[:, 2] = 0.8  # blue: the style's blue half would be nearer
    style = torch.zeros(1, 3, 64, 128)
    style[:, 0, :, :64] = rand(64, 64, seed=11)
    style[:, 2, :, 64:] = rand(64, 64, seed=12)
    marked = torch.zeros(1, 1, 64, 128)
    marked[..., :64] = 1
    cfg = StyleConfig(size=128, start_size=None, steps=1, **NB)
    for guide, want_red in ((marked, True), (None, False)):
        obj = objective(vgg, content, [style], [cfg], style_guides=[guide])
        obj.prepare(content)
        term = next(t for t in obj.active if t.name == "style")
        rows = term._style[0]
        # every target is one of the style rows (unit length); red rows come from the left half
        feats = vgg(style, term.layers)
        hc = N.hypercolumns(feats, term.layers, term.factors, N.grid_shape(64, 128))[0]  # (D, 16, 32)
        hc = hc / hc.norm(dim=0, keepdim=True)
        t = term._targets(term.index)[0, 0].flatten(1)  # (D, 512)
        sim = hc.flatten(1).t() @ t  # (512 style locations, 512 targets)
        from_left = sim.argmax(0) % 32 < 16
        assert bool(from_left.all()) == want_red, (guide is None, float(from_left.float().mean()))
        assert rows.shape[0] == (16 * 16 if guide is not None else 16 * 32)


def test_tiles_give_the_whole_images_neighbour_loss_and_gradient(vgg64):
    g = torch.Generator().manual_seed(11)
    base = torch.rand(1, 3, 16, 100, generator=g, dtype=torch.float64)
    content = torch.nn.functional.interpolate(base, size=(64, 400), mode="bilinear", align_corners=False)
    style = torch.rand(1, 3, 48, 80, generator=g, dtype=torch.float64)
    x0 = (content + 0.05 * torch.randn(content.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    left = torch.zeros(1, 1, 64, 400, dtype=torch.float64)
    left[..., :150] = 1
    out = []
    for tile in (0, 64):
        cfg = StyleConfig(size=400, start_size=None, steps=1, tile_size=tile, **NB)
        guides = Guides([Region(left, blend=(1.0,)), Region(1 - left, blend=(1.0,), weight=(2.0,))])
        obj = objective(vgg64, content, [style], [cfg], guides)
        obj.prepare(x0)
        x = x0.clone().requires_grad_(True)
        if obj.tile:
            offset = (16, 32)
            assert len(list(tiling.boxes(64, 400, 64, offset, obj.halo))) >= 6
            terms = obj.tiled_backward(lambda b: x[..., b[0]:b[1], b[2]:b[3]], (64, 400), offset)
        else:
            terms = obj(x)
            terms["total"].sum().backward()
        out.append((x.grad, terms["style"].detach(), obj.active[1].index))
    (g0, s0, t0), (g1, s1, t1) = out
    assert torch.equal(t0, t1)  # the query's features from tiles are the whole image's: the same neighbours
    assert torch.allclose(s0, s1, rtol=1e-10) and float(s0) > 0
    assert torch.allclose(g0, g1, rtol=1e-8, atol=1e-12 * float(g0.abs().max()))


def test_the_neighbour_loss_gradient_passes_a_float64_gradcheck(vgg64):
    content = rand(1, 3, 16, 16, seed=13).double()
    style = rand(1, 3, 16, 24, seed=14).double()
    cfg = StyleConfig(size=16, start_size=None, steps=1, content_weight=0.0, style_layers=NEIGHBOUR_LAYERS, **NB)
    obj = objective(vgg64, content, [style], [cfg])
    obj.prepare(content)
    x = (content * 0.8 + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: obj(y)["style"], (x,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_the_targets_are_searched_at_each_scale_and_every_refresh_steps(vgg, monkeypatch):
    from impasto.core import neighbour_term

    calls = []
    real = neighbour_term.NeighbourTerm.prepare
    monkeypatch.setattr(neighbour_term.NeighbourTerm, "prepare",
                        lambda self, images: (calls.append(tuple(images.shape[-2:])), real(self, images))[1])
    content, style = rand(1, 3, 48, 64, seed=15), rand(1, 3, 40, 40, seed=16)
    cfg = StyleConfig(size=64, start_size=32, scale_factor=2.0, steps=6, first_steps=3, neighbour_refresh=2, **NB)
    optimize(vgg, content, [style], [cfg])
    assert calls == [(24, 32), (48, 64), (48, 64), (48, 64)]  # scale 1; scale 2 at its steps 0, 2 and 4


def test_the_config_refuses_what_the_neighbour_loss_cannot_mean():
    with pytest.raises(ConfigError, match="neighbour.*loss_norm = 'relative'"):
        StyleConfig(style_loss="neighbour", loss_norm="classic")
    with pytest.raises(ConfigError, match="neighbour_mix"):
        StyleConfig(style_loss="neighbour", neighbour_mix=1.5)
    with pytest.raises(ConfigError, match="neighbour_refresh"):
        StyleConfig(neighbour_refresh=-1)
    for bad in (-0.5, float("nan"), 9):
        with pytest.raises(ConfigError, match="neighbour_rarity"):
            StyleConfig(style_loss="neighbour", neighbour_rarity=bad)


# -- every option's path, coarse to fine ------------------------------------------------------------------------
def _mask(path, w, h, side):
    a = np.zeros((h, w), np.uint8)
    if side == "left":
        a[:, : w // 2] = 255
    elif side == "right":
        a[:, w // 2:] = 255
    else:  # a square in the middle
        a[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    Image.fromarray(a, "L").save(path)
    return path


@pytest.mark.parametrize("options", [
    {},
    {"neighbour_rotations": True, "neighbour_refresh": 2, "neighbour_mix": 0.5},
    {"neighbour_rarity": 0.0},
    {"preserve_color": "luminance"},
    {"preserve_color": "histogram", "style_scale": 0.5},
    {"preserve_color": "palette"},
    {"two": True, "style_blend": (0.3, 0.7)},
    {"two": True, "masks": True, "keep": True},
    {"style_masks": True},
    {"tile_size": 64, "size": 144},
    {"optimizer": "lbfgs", "lr": 1.0},
], ids=["plain", "rotations-refresh-mix", "no-rarity", "luminance", "histogram-scale", "palette", "blend", "masks-keep", "style-masks",
        "tiles", "lbfgs"])
def test_every_option_runs_coarse_to_fine_with_neighbours(image_files, tmp_path, options):
    options = dict(options)
    styles = [image_files["style"], image_files["style2"]] if options.pop("two", False) else [image_files["style"]]
    kw = dict(size=64, start_size=32, steps=2, first_steps=2, **NB)
    if options.pop("masks", False):
        kw["masks"] = (str(_mask(tmp_path / "l.png", 64, 48, "left")), str(_mask(tmp_path / "r.png", 64, 48, "right")))
    if options.pop("keep", False):
        kw["keep_mask"] = str(_mask(tmp_path / "k.png", 64, 48, "middle"))
        kw["masks"] = (str(_mask(tmp_path / "l.png", 64, 48, "left")), str(_mask(tmp_path / "r.png", 64, 48, "right")))
    if options.pop("style_masks", False):
        kw["style_masks"] = (str(_mask(tmp_path / "s.png", 48, 48, "left")),)
    kw.update(options)
    out = tmp_path / "out.png"
    result = impasto.stylize(image_files["content"], styles, progress=False, output=out, **kw)
    assert out.exists() and result.status == "done"
    assert result.losses["style"] > 0 and np.isfinite(result.losses["total"])
    assert read_recipe(out)["config"]["style_loss"] == "neighbour"


def test_the_cli_paints_by_neighbours_and_records_it(image_files, tmp_path):
    from impasto.cli import main

    out = tmp_path / "cli.png"
    argv = ["stylize", str(image_files["content"]), str(image_files["style"]), "--preset", "neighbour", "--size", "48",
            "--start-size", "32", "--steps", "2", "-o", str(out), "-q"]
    assert main(argv) == 0
    config = read_recipe(out)["config"]
    assert config["style_loss"] == "neighbour" and config["preset"] == "neighbour"
    assert main([*argv[:-3], "--loss-norm", "classic", "-o", str(tmp_path / "x.png"), "-q"]) == 2  # refused
    assert not (tmp_path / "x.png").exists()


def test_a_video_runs_by_neighbours_with_its_temporal_term(tmp_path, style_img):
    from test_video import shifted_clip, write_clip

    write_clip(tmp_path / "in.mp4", shifted_clip(3, h=36, w=48), fps=12)
    style_img.save(tmp_path / "style.png")
    done = impasto.stylize_video(tmp_path / "in.mp4", tmp_path / "style.png", tmp_path / "frames", size=48, start_size=32, steps=2,
                                 later_steps=2, progress=False, style_loss="neighbour")
    assert done.status == "done" and done.frames == 3
    assert done.records[-1]["losses"]["temporal"] > 0 and done.records[-1]["losses"]["style"] > 0


def test_the_palette_finish_keeps_the_results_luminance_and_takes_the_styles_chroma_statistics():
    from impasto.core import colour

    g = torch.Generator().manual_seed(17)
    content = 0.3 + 0.4 * torch.rand(1, 3, 32, 40, generator=g)
    style = torch.stack([0.5 + 0.1 * torch.randn(24, 24, generator=g), 0.45 + 0.05 * torch.randn(24, 24, generator=g),
                         0.35 + 0.08 * torch.randn(24, 24, generator=g)])[None].clamp(0, 1)
    result = 0.3 + 0.4 * torch.rand(1, 3, 32, 40, generator=g)
    out = colour.in_palette(result, content, colour.chroma_stats([style]))
    y = lambda x: colour.rgb_to_ycbcr(x)[:, 0]
    assert torch.allclose(y(out), y(result), atol=1e-4)  # the result's luminance
    mean, cov = colour.chroma_stats([out])
    want_mean, want_cov = colour.chroma_stats([style])
    assert torch.allclose(mean, want_mean, atol=2e-3) and torch.allclose(cov, want_cov, atol=2e-4, rtol=0.05)
    # the photo's layout: the output's chroma is an increasing affine function of the photo's (per channel, here)
    cc, oc = colour.rgb_to_ycbcr(content)[0, 1].flatten(), colour.rgb_to_ycbcr(out)[0, 1].flatten()
    assert float(torch.corrcoef(torch.stack([cc, oc]))[0, 1]) > 0.9


def test_the_demo_paints_with_a_preset(tmp_path):
    from impasto.cli import main

    assert main(["demo", "--size", "48", "--steps", "1", "--preset", "neighbour", "-o", str(tmp_path)]) == 0
    assert read_recipe(tmp_path / "demo_result.png")["config"]["style_loss"] == "neighbour"
