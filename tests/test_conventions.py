"""Conventions taken from jcjohnson/neural-style: L-BFGS on unclamped pixels (against a hand-written
torch.optim.LBFGS loop), its ``-init random`` (the ImageNet mean colour plus σ 0.001 on 0-255), and the one loss
convention that W2 accepts."""

from __future__ import annotations

import pytest
import torch

import impasto
from impasto.config import StyleConfig, from_dict, from_toml
from impasto.core.objective import Objective
from impasto.core.optimize import initial_state, optimize
from impasto.errors import ConfigError
from impasto.io.images import pil_to_tensor, resize_long
from impasto.weights import load_vgg

LBFGS = dict(size=32, start_size=None, steps=5, precision="fp32", optimizer="lbfgs", lr=1.0, style_weight=100.0)
# By hand: Caffe's ImageNet mean, BGR 103.939, 116.779, 123.68 (neural-style's preprocess), as RGB in [0, 1].
MEAN_RGB = (123.68 / 255, 116.779 / 255, 103.939 / 255)


@pytest.fixture(scope="module")
def vgg():
    return load_vgg("bundled")


@pytest.fixture
def bright(content_img, style_img):
    """A bright content (1, 3, 24, 32) in [0.8, 1] (many pixels at 1, where the style pulls them past it) and a
    style (1, 3, 32, 32)."""
    content = pil_to_tensor(resize_long(content_img, 32))
    return content * 0.2 + 0.8, pil_to_tensor(resize_long(style_img, 32))


# -- L-BFGS ----------------------------------------------------------------------------------------------------------
def test_lbfgs_iterates_equal_a_plain_unclamped_lbfgs_loop(vgg, bright):
    content, style = bright
    cfg = StyleConfig(**LBFGS)
    state = initial_state(content, [cfg])
    outputs: list[torch.Tensor] = []
    optimize(vgg, content, [style], [cfg], state=state, callback=lambda s: outputs.append(state.images[0].clone()))
    assert state.status == "done" and len(outputs) == cfg.steps

    objective = Objective(vgg, content, [style], [cfg])
    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=1, history_size=100, tolerance_grad=-1, tolerance_change=-1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective(x)["total"].sum()
        loss.backward()
        return loss

    for _ in range(cfg.steps):
        opt.step(closure)  # and no clamp, ever
    x = x.detach()
    assert x.max() > 1.01  # the variables left [0, 1]: a clamped loop would differ from here on
    torch.testing.assert_close(state.params[0], x, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(state.images[0], x.clamp(0, 1), rtol=1e-4, atol=1e-5)  # only the output is clamped
    assert all(0 <= float(o.min()) and float(o.max()) <= 1 for o in outputs)


def test_adam_rgb_pixels_are_clamped_after_every_step(vgg, bright):
    """The contrast: Adam's ``rgb`` variables are projected onto [0, 1] (so its output is its variables)."""
    content, style = bright
    cfg = StyleConfig(**{**LBFGS, "optimizer": "adam", "lr": 0.1})
    state = optimize(vgg, content, [style], [cfg])
    p = state.params[0]
    assert float(p.min()) >= 0 and float(p.max()) <= 1 and (p == 1).any()
    assert torch.equal(state.images[0], p)


# -- init = "gaussian" -----------------------------------------------------------------------------------------------
def test_gaussian_init_is_the_imagenet_mean_colour_with_tiny_noise(bright):
    content, _ = bright
    cfg = StyleConfig(**LBFGS, init="gaussian", seed=3)
    img = initial_state(content, [cfg]).images[0]
    assert img.shape == content.shape
    from impasto.core.preprocess import CaffePreprocess

    assert CaffePreprocess.MEAN_BGR[::-1] == pytest.approx(tuple(255 * m for m in MEAN_RGB))
    per_channel = img.double().mean(dim=(0, 2, 3))
    torch.testing.assert_close(per_channel, torch.tensor(MEAN_RGB, dtype=torch.float64), atol=1e-5, rtol=0)
    stds = img.double().std(dim=(0, 2, 3))
    assert torch.all((stds - 0.001 / 255).abs() < 0.2 * 0.001 / 255), stds
    # Reproducible by seed, and a different seed gives other noise.
    assert torch.equal(initial_state(content, [cfg]).images[0], img)
    other = initial_state(content, [cfg.replace(seed=4)]).images[0]
    assert not torch.equal(other, img)


def test_the_neural_style_preset_starts_from_the_gaussian_init(bright):
    content, _ = bright
    cfg = impasto.preset("gatys-lbfgs", size=32, precision="fp32")
    assert cfg.init == "gaussian" and cfg.optimizer == "lbfgs" and cfg.loss_norm == "jcjohnson"
    img = initial_state(content, [cfg]).images[0]
    torch.testing.assert_close(img.double().mean(dim=(0, 2, 3)), torch.tensor(MEAN_RGB, dtype=torch.float64),
                               atol=1e-5, rtol=0)
    assert float(img.double().std(dim=(0, 2, 3)).max()) < 0.002 / 255  # nearly flat mean grey, not the content


# -- W2 and the loss convention --------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", ["classic", "jcjohnson"])
def test_wasserstein_needs_the_relative_convention(norm, tmp_path):
    with pytest.raises(ConfigError, match="loss_norm") as e:
        StyleConfig(style_loss="wasserstein", loss_norm=norm)
    assert e.value.key == "style_loss" and isinstance(e.value, ValueError)
    assert "relative" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        from_dict({"style_loss": "wasserstein", "loss_norm": norm})
    assert e.value.key == "style_loss"
    with pytest.raises(ConfigError) as e:  # a preset with its own convention
        impasto.preset("gatys-lbfgs", style_loss="wasserstein")
    assert e.value.key == "style_loss"
    toml = tmp_path / "w2.toml"
    toml.write_text(f'loss_norm = "{norm}"\nsteps = 3\nstyle_loss = "wasserstein"\n')
    with pytest.raises(ConfigError, match=r"w2\.toml:3:") as e:  # the key points at its line
        from_toml(toml)
    assert e.value.key == "style_loss"


def test_wasserstein_with_the_relative_convention_is_accepted():
    cfg = StyleConfig(style_loss="wasserstein", loss_norm="relative")
    assert cfg.replace(steps=3).style_loss == "wasserstein"
    with pytest.raises(ConfigError) as e:
        cfg.replace(loss_norm="classic")
    assert e.value.key == "style_loss"
