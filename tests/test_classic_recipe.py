"""The settings that make ``gatys-adam`` the classic exercise as the report ran it, on every path they take:
``size_side`` (the short side, as torchvision's ``Resize(int)``; coarse-to-fine scales on the same side),
``style_fit`` (styles stretched to the content's shape, at every scale) and ``adam_beta2`` (per run of a batch).
The pixel oracle against the report's loop is tests/test_report_oracle.py."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import get_args

import pytest
import torch
from PIL import Image

import impasto
from impasto.cli import build_parser
from impasto.config import SizeSide, StyleConfig, preset
from impasto.core.optimize import ADAM_BETAS, optimize, plan
from impasto.core.schedule import fit_side, scale_sizes
from impasto.core.targets import StyleTargets, style_size
from impasto.errors import ConfigError
from impasto.flags import config_flags, config_from_args
from impasto.inputs import prepare
from impasto.io.images import pil_to_tensor, resize_long

CPU = torch.device("cpu")


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, float("nan"), float("inf")])
def test_adam_beta2_outside_0_to_1_is_one_line_naming_the_key(value):
    with pytest.raises(ConfigError) as e:
        StyleConfig(adam_beta2=value)
    assert e.value.key == "adam_beta2" and "\n" not in str(e.value) and "< 1" in str(e.value)
    assert StyleConfig(adam_beta2=0.0).adam_beta2 == 0.0
    assert StyleConfig().adam_beta2 == ADAM_BETAS[1]  # the config's default is the engine's


@pytest.mark.parametrize("key,value,hint", [("size_side", "shrot", "short"), ("style_fit", "strech", "stretch")])
def test_the_new_choices_are_checked_with_a_suggestion(key, value, hint):
    with pytest.raises(ConfigError, match=f"did you mean '{hint}'") as e:
        StyleConfig(**{key: value})
    assert e.value.key == key


def test_flags_reach_the_config_and_come_back():
    args = build_parser().parse_args(["stylize", "c.png", "s.png", "--size-side", "short", "--style-fit", "stretch",
                                      "--adam-beta2", "0.999"])
    cfg = config_from_args(args)
    assert (cfg.size_side, cfg.style_fit, cfg.adam_beta2) == ("short", "stretch", 0.999)
    assert config_flags(cfg.to_dict()) == ["--size-side", "short", "--adam-beta2", "0.999", "--style-fit", "stretch"]
    g = preset("gatys-adam")
    assert (g.size, g.size_side, g.style_fit, g.adam_beta2, g.steps, g.start_size) == (400, "short", "stretch",
                                                                                      0.999, 1000, None)
    assert (g.param, g.init, g.optimizer, g.lr, g.loss_norm) == ("normalized", "content", "adam", 0.003, "classic")


def test_the_short_side_is_set_as_torchvision_resize_sets_it():
    # torchvision: the short side is the size, the long one int(size * long / short), truncated.
    assert fit_side(70, 110, 64, "short") == (64, 100)  # 100.57 → 100 (rounding would give 101)
    assert fit_side(110, 70, 64, "short") == (100, 64)
    assert fit_side(80, 80, 64, "short") == (64, 64)
    assert fit_side(70, 110, 64, "long") == (41, 64)  # the long side, rounded, as before
    cfg = StyleConfig(size=64, size_side="short")
    assert cfg.result_size(70, 110) == (64, 100) and cfg.replace(shape=(30, 40)).result_size(70, 110) == (30, 40)


def test_coarse_to_fine_scales_grow_on_the_side_size_sets():
    # start_size is the short side of the first scale when size is the short side: 32, 45, then 64 (the final).
    assert scale_sizes((64, 96), 32, side="short") == [(32, 48), (45, 67), (64, 96)]
    assert scale_sizes((96, 64), 32, side="short") == [(48, 32), (67, 45), (96, 64)]
    assert scale_sizes((64, 96), 32) == [(21, 32), (30, 45), (43, 64), (64, 96)]  # long sides 32, 45, 64, 96
    cfg = preset("gatys-adam", size=64, start_size=32, steps=2)
    assert plan(cfg, (64, 96)) == ([(32, 48), (45, 67), (64, 96)], [4, 2, 2])
    assert plan(cfg.replace(start_size=None), (64, 96))[0] == [(64, 96)]


def test_style_sizes_keep_their_aspect_or_stretch_at_every_scale():
    style = torch.zeros(1, 3, 90, 50)  # portrait
    assert style_size(style, (64, 96), 1.0) == (96, 53)  # keep, long side: the content's long side
    assert style_size(style, (64, 96), 0.5) == (48, 27)
    assert style_size(style, (64, 96), 1.0, side="short") == (115, 64)  # keep, short side: the content's short side
    assert style_size(style, (64, 96), 1.0, fit="stretch") == (64, 96)
    assert style_size((90, 50), (45, 67), 0.5, fit="stretch", side="short") == (22, 34)

    seen = []

    def run(x, layers):  # records what the style statistics are computed from
        seen.append(tuple(x.shape[-2:]))
        return {k: x for k in layers}

    targets = StyleTargets([torch.rand(1, 3, 90, 50)], 1.0, fit="stretch", side="short")
    for size in scale_sizes((64, 96), 32, side="short"):
        targets.at(run, torch.rand(1, 3, *size), ["relu1_1"], "gram", "classic", 0)
    assert seen == [(32, 48), (45, 67), (64, 96)]


def test_prepare_sizes_the_inputs_on_the_side_and_fit_asked_for():
    content, style = Image.new("RGB", (120, 80), "white"), Image.new("RGB", (50, 90), "black")
    cases = {  # (size_side, style_fit) → (content (h, w), style (h, w))
        ("long", "keep"): ((43, 64), (64, 36)),
        ("short", "keep"): ((64, 96), (115, 64)),
        ("long", "stretch"): ((43, 64), (43, 64)),
        ("short", "stretch"): ((64, 96), (64, 96)),
    }
    for (side, fit), (c_hw, s_hw) in cases.items():
        p = prepare(content, [style], [StyleConfig(size=64, size_side=side, style_fit=fit)], CPU)
        assert (tuple(p.content.shape[-2:]), tuple(p.styles[0].shape[-2:])) == (c_hw, s_hw), (side, fit)
    # The default path is unchanged: the style's long side is the content's, resized as before.
    p = prepare(content, [style], [StyleConfig(size=64)], CPU)
    assert torch.equal(p.styles[0], pil_to_tensor(resize_long(style, 64)))
    # A short side on a very wide photo can ask for a long side no config may ask for: one line, about size.
    with pytest.raises(ConfigError, match="over 16384") as e:
        prepare(Image.new("RGB", (2000, 20)), [style], [StyleConfig(size=200, size_side="short")], CPU)
    assert e.value.key == "size"


def test_a_batch_gives_each_run_its_own_beta2(vgg64, content_img, style_img):
    """In float64 (vgg64): in float32 one host had 227 of 2304 values up to 1.7e-3 apart, another 4e-7."""
    content, style = (pil_to_tensor(resize_long(im, 32)).double() for im in (content_img, style_img))
    small = dict(size=32, start_size=None, steps=6, precision="fp32", lr=0.05, style_weight=100.0,
                 style_layers=(("relu1_1", 1.0), ("relu2_1", 1.0)), content_layers=("relu2_1",))
    cfgs = [StyleConfig(**small, adam_beta2=b) for b in (0.99, 0.999, 0.9)]
    batch = optimize(vgg64, content, [style], cfgs)
    assert [g["betas"] for g in batch.opt_state["param_groups"]] == [(0.9, 0.99), (0.9, 0.999), (0.9, 0.9)]
    for i, cfg in enumerate(cfgs):
        alone = optimize(vgg64, content, [style], [cfg])
        assert alone.params[0].dtype == torch.float64
        torch.testing.assert_close(batch.params[i], alone.params[0], atol=1e-9, rtol=0)
    assert (batch.params[0] - batch.params[1]).abs().max() > 1e-3  # β₂ changes the steps (measured: 6e-3)


def test_coarse_to_fine_runs_on_the_short_side_with_stretched_styles(content_img, style_img):
    cfg = preset("gatys-adam", size=48, start_size=24, steps=1, weights="bundled", device="cpu", precision="fp32",
                 style_layers="relu1_1:1,relu2_1:0.75", content_layers="relu2_1")
    sizes = []
    result = impasto.stylize(content_img.resize((72, 48)), style_img.resize((30, 60)), cfg, progress=False,
                             callback=lambda s: sizes.append(s.size))
    assert result.status == "done" and result.image.size == (72, 48)
    assert sorted(set(sizes)) == [(24, 36), (34, 51), (48, 72)]  # short sides 24, 34, 48
    assert result.recipe["config"]["size_side"] == "short" and result.recipe["config"]["style_fit"] == "stretch"


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def test_the_server_decodes_and_limits_by_the_side_size_sets():
    pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'impasto[web]'")
    pytest.importorskip("multipart", reason="the web extra is not installed: pip install 'impasto[web]'")
    from fastapi import HTTPException

    from impasto.web.forms import Limits, content_keep, decode_all

    cfg = preset("gatys-adam", size=100)
    assert content_keep(cfg) == (100, 100) and content_keep(StyleConfig(size=100)) == 100
    uploads = [(_png(Image.new("RGB", (1200, 400), "white")), "wide.png", "content"),
               (_png(Image.new("RGB", (300, 900), "black")), "tall.png", "style-1")]
    content, styles = decode_all(uploads, Limits(), cfg)
    assert content.image.size == (600, 200)  # the short side keeps 2 × 100 (shrink.GAP), not the long side
    assert styles[0].image.size == (300, 900)  # it must keep 2 × the result's 100×300 either way up: all of it
    assert cfg.result_size(content.image.height, content.image.width) == (100, 300)
    with pytest.raises(HTTPException) as e:  # the result's long side, 300, is over this server's limit
        decode_all(uploads, Limits(max_size=250), cfg)
    assert e.value.status_code == 422 and "300x100" in e.value.detail and "--max-size" in e.value.detail


def test_the_page_offers_the_side_size_sets():
    static = Path(impasto.__file__).parent / "web" / "static"
    page = (static / "index.html").read_text(encoding="utf-8")
    select = re.search(r'<select id="size-side">(.*?)</select>', page, re.S)
    assert select and re.findall(r'value="(\w+)"', select.group(1)) == list(get_args(SizeSide))
    form = (static / "form.js").read_text(encoding="utf-8")
    assert 'size_side: $("#size-side").value' in form and '$("#size-side").value = cfg.size_side' in form


def test_a_sweep_plans_a_short_side_variant_at_its_own_size(tmp_path, image_files):
    """The sweep's planner (step totals, the ETA's work, the memory check that splits batches) sizes a variant the
    way the engine does: ``size_side = "short"`` puts ``size`` on the short side, coarse-to-fine included."""
    spec = tmp_path / "s.toml"
    spec.write_text('[experiment]\ntitle = "t"\n[base]\nsize = 48\nstart_size = 24\nsteps = 2\nprecision = "fp32"\n'
                    '[[variant]]\nname = "long"\n[[variant]]\nname = "short"\nsize_side = "short"\n')
    result = impasto.sweep(spec, content=image_files["content"], styles=[image_files["style"]],
                           output=tmp_path / "out", progress=False, plots=False)
    assert result.status == "done"
    with Image.open(image_files["content"]) as content:
        ch, cw = content.height, content.width
    for name in ("long", "short"):
        v = result[name]
        h, w = v.config.result_size(ch, cw)
        assert (v.image.height, v.image.width) == (h, w)
        assert v.total_steps == len(v.history) == impasto.api.total_steps(v.config, (h, w))
    assert result["short"].image.height == 48 and result["long"].image.width == 48


def test_the_recipe_and_the_report_say_when_the_classic_losses_are_calibrated():
    from impasto.api import describe_convention

    assert "calibrated per layer" in describe_convention("classic", "bundled")
    assert "calibrated" not in describe_convention("classic", "torchvision")
    assert "if the file is Caffe-layout" in describe_convention("classic", "vgg19.pth")
    assert describe_convention("relative", "bundled").startswith("relative: G=FF^T/(HW)")


@pytest.mark.parametrize("name", ["preview", "quality"])
def test_the_schedule_presets_run_coarse_to_fine_with_their_own_steps(name, image_files):
    """preview (scales ×2, 60 then 10 steps) and quality (200 then 100) run their own schedules end to end."""
    cfg = impasto.preset(name, size=48, start_size=24, precision="fp32", device="cpu")
    result = impasto.stylize(image_files["content"], image_files["style"], cfg, progress=False)
    assert result.status == "done"
    per_scale = [sum(1 for h in result.history if h["scale"] == s) for s in sorted({h["scale"] for h in result.history})]
    assert per_scale == ([60, 10] if name == "preview" else [200, 100, 100])
