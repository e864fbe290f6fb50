"""Oracle: the classic exercise as ../shared/reference/seed-report.txt ran it, transcribed, against impasto's
``gatys-adam`` preset: the same weights and images give the same pixels after 20 Adam steps.

The report's code is written out below as it printed it: ``load_image``, ``get_features`` (an ``nn.Sequential`` of
torchvision's 37 VGG19 modules with in-place ReLUs, capturing indices 0, 5, 10, 19, 21, 28: each ReLU overwrites
the convolution output just captured, so its "conv" features are relu outputs), ``gram_matrix`` (``view(depth,
h*w)``, ``torch.mm``), its loss lines, and ``optim.Adam([target], lr=0.003)`` (PyTorch's default betas, 0.9 and
0.999) on ``content.clone()``: normalised pixels, never clamped. The update lines (``zero_grad``, ``backward``,
``step``) are the Udacity notebook's: the report does not print them.

The report's loop adds ``layer_style_loss / (d * h * w)`` where ``layer_style_loss = torch.mean((target_gram -
style_gram)**2)``: unlike the Udacity notebook it comes from, it never multiplies by ``style_weights[layer]``, so
literally every style layer weighs 1. Both are tested: the literal loop against gatys-adam with its style layers
weighed 1, and the notebook's weighted line against the preset's own 1/0.75/0.2/0.2/0.2.

Resizing: torchvision's ``Resize`` filters PIL images bilinearly, impasto resizes with Lanczos. So the pixel oracle
hands impasto the images the report's ``load_image`` made (already at the final size, where impasto's resize is the
identity), and the sizing itself (the short side set as ``Resize(int)`` sets it, the style stretched to the
content's (H, W)) is tested on its own, on images that need resizing, shapes exactly and pixels loosely.

The network is a random VGG19 (He initialisation, so activations keep their scale through 16 layers) saved in
torchvision's layout: impasto takes it with torchvision's preprocessing, where the classic formula is the report's.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn, optim

import impasto
from impasto.config import preset
from impasto.core.optimize import optimize
from impasto.inputs import prepare
from impasto.io.images import pil_to_tensor
from impasto.samples import sample_content, sample_style
from impasto.weights import load_vgg

STEPS = 20
PRESET_LAYERS = {"conv1_1": 1.0, "conv2_1": 0.75, "conv3_1": 0.2, "conv4_1": 0.2, "conv5_1": 0.2}
ATOL = 1e-8  # on normalised pixels (their std is about 1), in float64; 20 Adam steps of 0.003 move them ~0.06


# -- the report's code (torchvision's transforms written out with PIL and numpy: torchvision is not installed) ----
def _resize(image, size):
    """``transforms.Resize(size)`` on a PIL image: an int sets the short side (the long one truncated, as
    torchvision computes it), an (h, w) pair the exact shape; PIL's bilinear filter, torchvision's default."""
    w, h = image.size
    if isinstance(size, int):
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    else:
        new_h, new_w = size
    return image.resize((new_w, new_h), Image.BILINEAR)


def _to_tensor_normalized(image, dtype=torch.float32):
    """``transforms.ToTensor()`` then ``transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))``.
    ``float64``: ToTensor's values in float64, normalised with the same (float32) constants, as impasto does it."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous().float().div(255)
    mean = torch.tensor((0.485, 0.456, 0.406)).view(3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)
    return x.to(dtype).sub(mean).div(std)


def load_image(image, max_size=400, shape=None, dtype=torch.float32):
    """The report's ``load_image`` (a PIL image instead of a path); → the tensor, and the resized image it came
    from (what impasto is given in the pixel oracle)."""
    image = image.convert('RGB')

    # large images will slow down processing
    if max(image.size) > max_size:
        size = max_size
    else:
        size = max(image.size)

    if shape is not None:
        size = shape

    resized = _resize(image, size)
    image = _to_tensor_normalized(resized, dtype)[:3, :, :].unsqueeze(0)
    return image, resized


def get_features(image, model, layers=None):
    if layers is None:
        layers = {'0': 'conv1_1',
                  '5': 'conv2_1',
                  '10': 'conv3_1',
                  '19': 'conv4_1',
                  '21': 'conv4_2',
                  '28': 'conv5_1',
                  }
    features = {}
    x = image
    # model._modules is a dictionary holding each module in the model
    for name, layer in model._modules.items():
        x = layer(x)
        if name in layers:
            features[layers[name]] = x
    return features


def gram_matrix(tensor):
    batch_size, depth, height, width = tensor.size()
    Flatten = tensor.view(depth, height * width)
    gram = torch.mm(Flatten, Flatten.t())
    return gram


def report_run(vgg, content, style, style_weights, *, weighted, steps=STEPS, content_weight=1, style_weight=1e6):
    """The report's training loop; ``weighted``: the Udacity line ``style_weights[layer] * torch.mean(...)``.
    → the final target (normalised pixels) and the total loss printed at each step."""
    content_features = get_features(content, vgg)
    style_features = get_features(style, vgg)
    style_grams = {layer: gram_matrix(style_features[layer]) for layer in style_features}
    target = content.clone().requires_grad_(True)
    optimizer = optim.Adam([target], lr=0.003)
    totals = []
    for ii in range(1, steps + 1):  # noqa: B007 (the report's loop, as it wrote it)
        target_features = get_features(target, vgg)
        content_loss = torch.mean((target_features['conv4_2'] - content_features['conv4_2'])**2)

        style_loss = 0
        for layer in style_weights:
            target_feature = target_features[layer]
            _, d, h, w = target_feature.shape
            target_gram = gram_matrix(target_feature)
            style_gram = style_grams[layer]
            if weighted:
                layer_style_loss = style_weights[layer] * torch.mean((target_gram - style_gram)**2)
            else:
                layer_style_loss = torch.mean((target_gram - style_gram)**2)
            style_loss += layer_style_loss / (d * h * w)

        total_loss = content_weight * content_loss + style_weight * style_loss
        optimizer.zero_grad()
        total_loss.backward()
        optimizer.step()
        totals.append(total_loss.item())
    return target.detach(), totals


# -- the network both sides share --------------------------------------------------------------------------------
def report_vgg(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """``models.vgg19().features``: conv+ReLU(inplace=True) pairs, a max pool after each block; 37 modules."""
    modules: list[nn.Module] = []
    in_ch = 3
    for n, ch in zip((2, 2, 4, 4, 4), (64, 128, 256, 512, 512)):
        for _ in range(n):
            modules += [nn.Conv2d(in_ch, ch, kernel_size=3, stride=1, padding=1), nn.ReLU(inplace=True)]
            in_ch = ch
        modules.append(nn.MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False))
    vgg = nn.Sequential(*modules)
    assert len(vgg) == 37 and isinstance(vgg[21], nn.Conv2d) and isinstance(vgg[36], nn.MaxPool2d)
    vgg.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
    for param in vgg.parameters():
        param.requires_grad_(False)
    return vgg.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random VGG19 state dict in torchvision's layout (features.N.weight), saved as a file."""
    g = torch.Generator().manual_seed(11)
    state = {}
    in_ch, i = 3, 0
    for n, ch in zip((2, 2, 4, 4, 4), (64, 128, 256, 512, 512)):
        for _ in range(n):
            state[f"features.{i}.weight"] = torch.randn(ch, in_ch, 3, 3, generator=g) * (2 / (9 * in_ch)) ** 0.5
            state[f"features.{i}.bias"] = torch.randn(ch, generator=g) * 0.01
            in_ch, i = ch, i + 2
        i += 1
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture(scope="module")
def images():
    """A landscape photo 120×80 (its short side becomes 64) and a portrait painting 50×90 (stretched to it)."""
    return sample_content(120, 80, seed=1), sample_style(50, 90, seed=2)


def _engine(weights_path, content, style, **overrides):
    """impasto's gatys-adam on ``content`` and ``style`` (PIL, at the final size) in float64: the inputs prepared
    as for any run, the engine's one loop, a float64 copy of the network the file loads. → the final state."""
    cfg = preset("gatys-adam", size=64, steps=STEPS, weights=str(weights_path), device="cpu", precision="fp32",
                 **overrides)
    prepared = prepare(content, [style], [cfg], torch.device("cpu"))
    model = copy.deepcopy(load_vgg(cfg.weights)).double()  # load_vgg caches its model: leave that one float32
    return optimize(model, prepared.content.double(), [s.double() for s in prepared.styles], [cfg])


@pytest.mark.parametrize("weighted", [False, True], ids=["literal-loop", "udacity-weighted"])
def test_gatys_adam_paints_the_reports_pixels(weights, images, weighted):
    """float64 on both sides, so that the comparison is of the recipes, not of rounding: Adam moves a pixel whose
    gradient is near 0 by a full step either way, so in float32 a 1e-7 difference in the inputs' rounding alone
    makes a few pixels differ by 1e-3 after 20 steps (the float32 run is checked below by its losses)."""
    path, state = weights
    content_t, content_pil = load_image(images[0], max_size=64, dtype=torch.float64)
    style_t, style_pil = load_image(images[1], shape=content_t.shape[-2:], dtype=torch.float64)
    assert tuple(content_t.shape[-2:]) == (64, 96) and tuple(style_t.shape[-2:]) == (64, 96)
    layers = PRESET_LAYERS if weighted else dict.fromkeys(PRESET_LAYERS, 1.0)
    want, totals = report_run(report_vgg(state).double(), content_t, style_t, layers, weighted=weighted)

    # impasto names the layers for what they hold (relu), and the preset's layers are the notebook's weights.
    relu = {k.replace("conv", "relu"): w for k, w in layers.items()}
    if weighted:
        assert dict(preset("gatys-adam").style_layers) == relu
    run = _engine(path, content_pil, style_pil, **({} if weighted else {"style_layers": relu}))
    got = run.params[0]  # the optimiser's variable: normalised pixels, unclamped
    assert run.status == "done" and got.dtype == torch.float64 and tuple(got.shape[-2:]) == (64, 96)
    assert (got - content_t).abs().max() > 1e-2  # 20 steps moved the pixels far past the tolerance
    torch.testing.assert_close(got, want, rtol=0, atol=ATOL)
    # The report's printed losses, in its units, step by step.
    np.testing.assert_allclose([h["total"] for h in run.history[0]], totals, rtol=1e-6)  # impasto records losses in float32

    # PyTorch's default betas, in the optimiser itself (impasto's own β₂, 0.99, moves these pixels by ~4e-3).
    assert run.opt_state["param_groups"][0]["betas"] == (0.9, 0.999)

    if not weighted:
        # The preset through the public API, in float32: the report's losses, and nearly its pixels.
        cfg = preset("gatys-adam", size=64, steps=STEPS, weights=str(path), device="cpu", precision="fp32",
                     style_layers=relu)
        result = impasto.stylize(content_pil, style_pil, cfg, progress=False)
        np.testing.assert_allclose([h["total"] for h in result.history], totals, rtol=1e-5)
        assert (result.state.params[0].double() - want).abs().mean() < 1e-4


def test_gatys_adam_sizes_the_inputs_as_the_reports_load_image(images):
    """The short side (``Resize(64)``: 120×80 → 96×64) and the style stretched to the content's shape; the pixels
    differ only by the filter (Lanczos here, bilinear there). The default keeps impasto's long side and aspect."""
    content, style = images
    cfg = preset("gatys-adam", size=64, device="cpu")
    prepared = prepare(content, [style], [cfg], torch.device("cpu"))
    _, content_ref = load_image(content, max_size=64)
    _, style_ref = load_image(style, shape=(content_ref.height, content_ref.width))
    assert tuple(prepared.content.shape[-2:]) == (content_ref.height, content_ref.width) == (64, 96)
    assert tuple(prepared.styles[0].shape[-2:]) == (64, 96)
    assert (prepared.content - pil_to_tensor(content_ref)).abs().mean() < 0.02
    assert (prepared.styles[0] - pil_to_tensor(style_ref)).abs().mean() < 0.02
    # torchvision truncates the long side: 110×70 → 100×64 (64·110/70 = 100.57), and so in portrait.
    for w, h in ((110, 70), (70, 110)):
        shape = tuple(prepare(content.resize((w, h)), [style], [cfg], torch.device("cpu")).content.shape[-2:])
        ref = _resize(content.resize((w, h)), 64)
        assert shape == (ref.height, ref.width)
    default = prepare(content, [style], [impasto.StyleConfig(size=64, device="cpu")], torch.device("cpu"))
    assert tuple(default.content.shape[-2:]) == (43, 64) and tuple(default.styles[0].shape[-2:]) == (64, 36)
