"""Padding of VGG's convolutions: each mode equals an explicit F.pad + conv oracle, changes only a border band as
wide as the receptive field's reach, is exact through tiles (only the image's outer edge is padded) and coarse to
fine, and reaches the network through the API; the study presets keep zeros."""

from __future__ import annotations

import copy
import functools
from typing import get_args

import pytest
import torch
import torch.nn.functional as F

import impasto.api
from impasto import api
from impasto.config import Padding, StyleConfig, preset
from impasto.core import tiling
from impasto.core.optimize import optimize
from impasto.core.vgg import LAYER_NAMES, PADDINGS, VGG19
from impasto.weights import load_vgg

MODES = ("zeros", "reflect", "replicate", "replicate-first")


@functools.cache
def _net(mode: str) -> VGG19:
    return load_vgg("bundled", "max", "cpu", mode)


def oracle(model: VGG19, rgb: torch.Tensor, layer: str, mode: str) -> torch.Tensor:
    """VGG19 by hand: every 3×3 convolution is F.pad (the mode, or zeros) then an unpadded F.conv2d."""
    x = model.preprocess(rgb)
    n_conv = 0
    for idx, name in enumerate(LAYER_NAMES):
        module = model.features[idx]
        if name.startswith("conv"):
            m = mode if mode != "replicate-first" else ("replicate" if n_conv == 0 else "zeros")
            if m == "reflect" and min(x.shape[-2:]) == 1:
                m = "replicate"  # a one-pixel side has nothing to reflect
            padded = F.pad(x, (1, 1, 1, 1), mode="constant", value=0.0) if m == "zeros" else F.pad(x, (1, 1, 1, 1), mode=m)
            x = F.conv2d(padded, module.weight, module.bias)
            n_conv += 1
        elif name.startswith("relu"):
            x = torch.relu(x)
        else:
            x = F.max_pool2d(x, 2, 2)
        if name == layer:
            return x
    raise AssertionError(layer)


def test_the_choices_are_the_networks():
    assert get_args(Padding) == PADDINGS == MODES
    assert StyleConfig().padding == "replicate-first"  # chosen by bench/borders.py (bench/README.md, "Borders")
    for name in ("gatys-adam", "gatys-lbfgs"):  # the study presets keep zeros whatever the default becomes
        assert preset(name).padding == "zeros" and preset(name, padding="reflect").padding == "reflect"
    with pytest.raises(ValueError, match="choose one of zeros, reflect, replicate, replicate-first"):
        StyleConfig(padding="mirror")


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_equals_pad_then_conv(mode):
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(1, 3, 37, 52, generator=g)
    net = _net(mode)
    got = net(rgb, ["relu1_1", "conv3_1", "relu5_1"])
    for layer, feat in got.items():
        want = oracle(net, rgb, layer, mode)
        torch.testing.assert_close(feat, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    if mode != "zeros":
        zeros = _net("zeros")(rgb, ["relu1_1"])["relu1_1"]
        assert (got["relu1_1"] - zeros).abs().amax(dim=(0, 1))[0].min() > 0  # the whole top row differs
        torch.testing.assert_close(got["relu1_1"][..., 1:-1, 1:-1], zeros[..., 1:-1, 1:-1])  # and nothing inside


def test_a_one_pixel_side_is_replicated_when_it_cannot_be_reflected():
    rgb = torch.rand(1, 3, 16, 48, generator=torch.Generator().manual_seed(2))  # relu5_1 is 1 × 3
    net = _net("reflect")
    feat = net(rgb, ["relu5_1"])["relu5_1"]
    assert feat.shape[-2:] == (1, 3)
    torch.testing.assert_close(feat, oracle(net, rgb, "relu5_1", "reflect"), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "replicate-first"])
def test_only_a_band_as_wide_as_the_reach_changes(mode):
    """Padding is what the network sees past the edge: positions whose receptive field stays inside the image are
    the same in every mode (relu3_1 reaches 1+1+2+2+4 = 10 px before, 13 px after (the poolings' far sides): 4 of
    its positions at stride 4)."""
    rgb = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(3))
    a, b = _net(mode)(rgb, ["relu3_1"])["relu3_1"], _net("zeros")(rgb, ["relu3_1"])["relu3_1"]
    assert tiling.reach("relu3_1") == 13
    k = -(-tiling.reach("relu3_1") // tiling.stride("relu3_1"))  # 4 positions
    torch.testing.assert_close(a[..., k:-k, k:-k], b[..., k:-k, k:-k], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(a[..., :k, :], b[..., :k, :], rtol=1e-3, atol=1e-3)


@pytest.fixture(scope="module")
def wide():
    g = torch.Generator().manual_seed(11)
    base = torch.rand(1, 3, 16, 64, generator=g)
    content = torch.nn.functional.interpolate(base, size=(64, 256), mode="bilinear", align_corners=False)
    return (content + 0.05 * torch.rand(1, 3, 64, 256, generator=g)).clamp(0, 1), torch.rand(1, 3, 48, 48, generator=g)


@pytest.mark.parametrize("mode", ["reflect", "replicate-first"])
def test_tiles_pad_only_the_images_outer_edge(wide, mode):
    """A tile's inner edges see real neighbours (its halo): the assembled features are the whole image's, in
    every mode, up to relu5_1."""
    content, _ = wide
    net = _net(mode)
    whole = net(content, ["relu5_1"])["relu5_1"]
    tiled = tiling.tiled_features(net, content, ["relu5_1"], 64, halo=tiling.halo_for(["relu5_1"]))["relu5_1"]
    assert len(list(tiling.boxes(64, 256, 64))) == 4
    assert (tiled - whole).abs().max() <= 1e-5 * whole.abs().max()
    assert not torch.allclose(whole, _net("zeros")(content, ["relu5_1"])["relu5_1"])


def test_the_tiled_loop_with_coarse_to_fine_equals_the_whole_image_loop_with_reflect(wide):
    """In float64 (as test_tiles' loop test, which says why); shallow layers keep it quick (a 16 px halo)."""
    content, style = (t[..., :192].double() for t in wide)
    net = copy.deepcopy(_net("reflect")).double()
    cfg = StyleConfig(size=192, start_size=96, steps=1, first_steps=1, precision="fp32", padding="reflect",
                      style_layers=(("relu1_1", 1.0), ("relu2_1", 1.0), ("relu3_1", 1.0)), content_layers=("relu3_1",))
    whole = optimize(net, content, [style], [cfg])
    tiled = optimize(net, content, [style], [cfg.replace(tile_size=64)])
    assert [h["scale"] for h in tiled.history[0]] == [0, 1, 2]
    assert tiling.halo_for(["relu3_1"]) == 16 and len(list(tiling.boxes(64, 192, 64, halo=16))) == 3
    torch.testing.assert_close(tiled.images[0], whole.images[0], atol=1e-7, rtol=0)


def test_the_api_builds_the_network_with_the_configs_padding(image_files, monkeypatch):
    asked = []

    def spy(source, pooling, device, padding="zeros"):
        asked.append(padding)
        return load_vgg(source, pooling, device, padding)

    monkeypatch.setattr(impasto.api, "load_vgg", spy)
    tiny = dict(size=48, start_size=32, steps=1, first_steps=1, progress=False)
    a = api.stylize(str(image_files["content"]), str(image_files["style"]), padding="replicate", **tiny)
    b = api.stylize(str(image_files["content"]), str(image_files["style"]), **tiny)
    assert asked == ["replicate", "replicate-first"]  # the default's
    assert a.recipe["config"]["padding"] == "replicate" and a.image.tobytes() != b.image.tobytes()
    # runs that differ in padding use different networks: they cannot share a batch
    assert api.batch_key(StyleConfig(padding="reflect")) != api.batch_key(StyleConfig())


def test_the_video_engine_builds_its_network_with_the_configs_padding(content_img, style_img, monkeypatch):
    import impasto.frames

    asked = []

    def spy(source, pooling, device, padding="zeros"):
        asked.append(padding)
        return load_vgg(source, pooling, device, padding)

    monkeypatch.setattr(impasto.frames, "load_vgg", spy)
    runner = api.FrameRunner(content_img, [style_img], StyleConfig(size=48, start_size=None, padding="reflect"))
    assert asked == ["reflect"] and runner.model.padding == "reflect"


def test_the_memory_estimate_counts_the_padded_copies():
    """Each padded convolution keeps its padded input for backward: C_in × (h + 2) × (w + 2) floats more, counted as
    the other activations are (fp32, ×2 for the gradient, ×0.6 measured scale)."""
    from impasto.core.memory import estimate_bytes

    zeros = estimate_bytes(512, 512, ["relu1_1"])
    first = estimate_bytes(512, 512, ["relu1_1"], padding="replicate-first")
    assert abs(first - zeros - 3 * 514 * 514 * 4 * 2 * 0.6) <= 1  # conv1_1's 3-channel input, padded
    deep = ["relu1_1", "relu5_1"]
    assert estimate_bytes(512, 512, deep, padding="reflect") > 1.15 * estimate_bytes(512, 512, deep)  # + fixed costs
    assert estimate_bytes(512, 512, deep, padding="replicate-first") < 1.01 * estimate_bytes(512, 512, deep)
