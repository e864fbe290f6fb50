"""Each option's effect, against an oracle: the EMA and the parametrisation by hand-written loops, ``tol`` by the
stopping rule applied to an uninterrupted run's history, ``style_scale`` by Grams computed by hand, and the Adam
moments carried across scales by their formulas and by a run cut at a scale boundary."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from impasto.config import StyleConfig
from impasto.core.objective import Objective
from impasto.core.optimize import ADAM_BETAS, TOL_WINDOW, initial_state, optimize, plan
from impasto.core.pixels import IMAGENET_MEAN, IMAGENET_STD, rescale_moments, resize_moments
from impasto.core.state import RunState
from impasto.core.targets import resize
from impasto.io.images import pil_to_tensor, resize_long
from impasto.weights import load_vgg

ONE = dict(start_size=None, first_steps=None, precision="fp32")
SHALLOW = dict(style_layers="relu1_1,relu2_1", content_layers=("relu2_1",))  # cheap, for the long schedules


@pytest.fixture(scope="module")
def vgg():
    return load_vgg("bundled")


@pytest.fixture
def tensors(content_img, style_img):
    """Content (1, 3, 36, 48) and style (1, 3, 48, 48)."""
    return pil_to_tensor(resize_long(content_img, 48)), pil_to_tensor(resize_long(style_img, 48))


def style_targets(objective: Objective) -> dict[str, torch.Tensor]:
    style = next(t for t in objective.terms if t.name == "style")
    return {k: m.target for k, m in style.losses[0].items()}


# -- ema -------------------------------------------------------------------------------------------------------------
def test_ema_output_is_the_bias_corrected_moving_average_of_the_iterates(vgg, tensors):
    content, style = tensors
    cfg = StyleConfig(size=48, **ONE, steps=6, lr=0.05, style_weight=100.0)
    state = initial_state(content, [cfg])
    iterates: list[torch.Tensor] = []
    optimize(vgg, content, [style], [cfg], state=state, callback=lambda s: iterates.append(state.images[0].clone()))
    assert len(iterates) == 6

    ema_cfg = cfg.replace(ema=0.9)
    ema_state = initial_state(content, [ema_cfg])
    outputs: list[torch.Tensor] = []
    optimize(vgg, content, [style], [ema_cfg], state=ema_state,
             callback=lambda s: outputs.append(ema_state.images[0].clone()))

    m = torch.zeros_like(iterates[0])
    for t, (x, out) in enumerate(zip(iterates, outputs), start=1):
        m = 0.9 * m + 0.1 * x
        torch.testing.assert_close(out, m / (1 - 0.9**t), atol=1e-6, rtol=0)  # at every step, not only the last
    torch.testing.assert_close(ema_state.images[0], m / (1 - 0.9**6), atol=1e-6, rtol=0)
    assert (ema_state.images[0] - iterates[-1]).abs().max() > 1e-3  # the average is not the last iterate
    torch.testing.assert_close(outputs[0], iterates[0], atol=1e-6, rtol=0)  # bias correction: step 1 is x₁


# -- tol -------------------------------------------------------------------------------------------------------------
def _steps_per_scale(state: RunState) -> list[int]:
    scales = [h["scale"] for h in state.history[0]]
    return [scales.count(s) for s in range(max(scales) + 1)]


def test_a_huge_tol_ends_every_scale_after_the_first_window(vgg, tensors):
    content, style = tensors
    content = resize(content, (24, 32))
    cfg = StyleConfig(size=32, start_size=16, steps=24, first_steps=24, precision="fp32", **SHALLOW)
    n_scales = len(plan(cfg, (24, 32))[0])
    assert n_scales == 3
    full = optimize(vgg, content, [style], [cfg])
    assert full.status == "done" and _steps_per_scale(full) == [24] * n_scales
    early = optimize(vgg, content, [style], [cfg.replace(tol=0.99)])
    assert early.status == "done" and _steps_per_scale(early) == [TOL_WINDOW + 1] * n_scales
    assert early.images[0].shape[-2:] == (24, 32)  # the last scale was still reached


def test_tol_stops_where_the_rule_says_on_the_uninterrupted_history(vgg, tensors):
    """Oracle: the first step t > TOL_WINDOW whose loss improved on step t − TOL_WINDOW's by less than
    tol × |that loss|, read off a run without tol (the iterates are the same until the stop)."""
    content, style = tensors
    content = resize(content, (24, 32))
    cfg = StyleConfig(size=32, **ONE, steps=40, lr=0.05, style_weight=100.0, **SHALLOW)
    losses = [h["total"] for h in optimize(vgg, content, [style], [cfg]).history[0]]
    gains = {t: (losses[t - 1 - TOL_WINDOW] - losses[t - 1]) / abs(losses[t - 1 - TOL_WINDOW])
             for t in range(TOL_WINDOW + 1, len(losses) + 1)}
    tol = sorted(gains.values())[len(gains) // 2]  # a median gain: the run stops somewhere inside
    expected = next(t for t, g in gains.items() if g < tol)
    assert TOL_WINDOW + 1 < expected < 40, gains
    stopped = optimize(vgg, content, [style], [cfg.replace(tol=tol)])
    assert stopped.status == "done" and stopped.step == expected
    assert [h["total"] for h in stopped.history[0]] == losses[:expected]


# -- style_scale -----------------------------------------------------------------------------------------------------
def test_style_scale_sizes_the_style_against_the_content_long_side(vgg, tensors):
    """The content's long side is 48: at style_scale 0.5 the 48×48 style is used at 24×24 (by hand), at 1.0 as it is.
    Relative Grams, by hand: G = F Fᵀ / (h·w)."""
    content, style = tensors
    layers = ("relu1_1", "relu2_1", "relu3_1")

    def by_hand(img: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = vgg(img, list(layers))
        return {k: (f.flatten(2) @ f.flatten(2).transpose(1, 2)) / (f.shape[2] * f.shape[3]) for k, f in feats.items()}

    def targets(scale: float) -> dict[str, torch.Tensor]:
        cfg = StyleConfig(size=48, **ONE, style_layers=",".join(layers), style_scale=scale)
        return style_targets(Objective(vgg, content, [style], [cfg]))

    half, full = targets(0.5), targets(1.0)
    small = resize(style, (24, 24))
    assert small.shape[-2:] == (24, 24)
    for k in layers:
        torch.testing.assert_close(half[k], by_hand(small)[k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(full[k], by_hand(style)[k], rtol=1e-5, atol=1e-6)
        assert (half[k] - full[k]).abs().max() > 1e-3 * full[k].abs().max()  # 0.5 is not 1.0


def test_style_scale_follows_each_scale_of_coarse_to_fine(vgg, tensors):
    """At a scale whose content long side is 24, style_scale 0.5 uses the style at 12×12."""
    content, style = tensors
    cfg = StyleConfig(size=48, **ONE, style_layers="relu1_1,relu2_1", style_scale=0.5)
    small_content = resize(content, (18, 24))
    got = style_targets(Objective(vgg, small_content, [style], [cfg]))
    feats = vgg(resize(style, (12, 12)), ["relu1_1", "relu2_1"])
    for k, f in feats.items():
        torch.testing.assert_close(got[k], (f.flatten(2) @ f.flatten(2).transpose(1, 2)) / f[0, 0].numel(),
                                   rtol=1e-5, atol=1e-6)


# -- param = "normalized" ---------------------------------------------------------------------------------------------
def test_normalized_param_is_adam_on_unclamped_imagenet_normalised_pixels(vgg, tensors):
    content, style = tensors
    cfg = StyleConfig(size=48, **ONE, steps=5, param="normalized", lr=0.5, style_weight=100.0)
    state = optimize(vgg, content, [style], [cfg])

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    objective = Objective(vgg, content, [style], [cfg])
    x = ((content - mean) / std).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=cfg.lr, betas=(0.9, 0.99))
    for _ in range(cfg.steps):
        opt.zero_grad()
        objective(x * std + mean)["total"].sum().backward()
        opt.step()  # no clamp
    pixels = (x * std + mean).detach()
    assert ((pixels < 0) | (pixels > 1)).any()  # the comparison below tells clamped from unclamped
    torch.testing.assert_close(state.params[0], x.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state.images[0], pixels.clamp(0, 1), rtol=1e-5, atol=1e-5)
    assert ADAM_BETAS == (0.9, 0.99)


# -- Adam's moments across scales -------------------------------------------------------------------------------------
def _adam_state(m: torch.Tensor, v: torch.Tensor, step: float, groups: list | None = None) -> dict:
    """An Adam state_dict whose parameter 0 has these moments after ``step`` steps."""
    return {"state": {0: {"step": torch.tensor(step), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}},
            "param_groups": groups if groups is not None else [{"lr": 0.01, "betas": ADAM_BETAS, "params": [0]}]}


def test_resize_moments_resizes_both_moments_bilinearly():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(1, 3, 8, 6, generator=g)
    v = torch.rand(1, 3, 8, 6, generator=g)
    out = resize_moments(_adam_state(m, v, 5.0), (12, 9))
    st = out["state"][0]
    torch.testing.assert_close(st["exp_avg"], F.interpolate(m, size=(12, 9), mode="bilinear", align_corners=False))
    torch.testing.assert_close(st["exp_avg_sq"], F.interpolate(v, size=(12, 9), mode="bilinear", align_corners=False))
    assert (st["exp_avg_sq"] >= 0).all() and float(st["step"]) == 5.0  # the step count (bias correction) is kept
    same = resize_moments(_adam_state(m, v, 5.0), (8, 6))["state"][0]
    assert torch.equal(same["exp_avg"], m) and torch.equal(same["exp_avg_sq"], v)


def test_rescale_moments_matches_the_second_moment_to_the_current_gradient():
    g = torch.Generator().manual_seed(1)
    m = torch.randn(1, 3, 12, 9, generator=g)
    v = torch.rand(1, 3, 12, 9, generator=g) * 4.0 + 0.1
    carried = torch.zeros(1, 3, 12, 9, requires_grad=True)
    fresh = torch.zeros(1, 3, 12, 9, requires_grad=True)  # no moments yet: left alone
    opt = torch.optim.Adam([{"params": [carried]}, {"params": [fresh]}], lr=0.01, betas=ADAM_BETAS)
    opt.load_state_dict(_adam_state(m, v, 7.0, opt.state_dict()["param_groups"]))
    grad = torch.randn(1, 3, 12, 9, generator=g) * 0.01  # a finer scale's (much smaller) gradient
    carried.grad, fresh.grad = grad, grad.clone()

    factors = rescale_moments(opt, [carried, fresh])

    bias2 = 1 - ADAM_BETAS[1] ** 7
    s2 = grad.pow(2).mean() / (v / bias2).mean()  # by hand
    st = opt.state[carried]
    torch.testing.assert_close((st["exp_avg_sq"] / bias2).mean(), grad.pow(2).mean(), rtol=1e-5, atol=0)
    torch.testing.assert_close(st["exp_avg_sq"], v * s2, rtol=1e-5, atol=0)  # one factor: the pattern is kept
    torch.testing.assert_close(st["exp_avg"], m * s2.sqrt(), rtol=1e-5, atol=0)
    assert torch.equal(st["exp_avg"].sign(), m.sign())
    assert factors[0] == pytest.approx(float(s2.sqrt()), rel=1e-5) and factors[0] < 0.1
    assert factors[1] == 1.0 and not opt.state[fresh]


def test_moments_are_carried_to_the_next_scale_and_a_run_cut_there_resumes_exactly(vgg, tensors):
    content, style = tensors
    cfg = StyleConfig(size=48, start_size=24, steps=2, first_steps=3, precision="fp32", style_weight=100.0)
    sizes, steps = plan(cfg, (36, 48))
    assert sizes == [(18, 24), (26, 34), (36, 48)] and steps == [3, 2, 2]

    full = optimize(vgg, content, [style], [cfg])
    # Cut at the first scale boundary: stopped after the first scale's last step, before the second's first.
    from impasto.core.events import StopToken

    stop = StopToken()
    part = optimize(vgg, content, [style], [cfg], stop=stop,
                    callback=lambda s: stop.stop("cut") if s.step == steps[0] else None)
    assert part.status == "cancelled" and (part.step, part.scale, part.scale_step) == (3, 1, 0)
    assert part.rescale_pending  # carried moments still to be matched to the second scale's gradient

    # Oracle for the carry: the first scale alone (a single-scale run at its size) and its moments, resized.
    alone = optimize(vgg, resize(content, sizes[0]), [style], [cfg.replace(start_size=None, steps=steps[0])])
    for k in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(part.opt_state["state"][0][k], F.interpolate(
            alone.opt_state["state"][0][k], size=sizes[1], mode="bilinear", align_corners=False))
    torch.testing.assert_close(part.params[0], resize(alone.images[0], sizes[1]))  # upsampled output

    resumed_state = RunState.from_dict(copy.deepcopy(part.to_dict()))  # nothing shared with the cut run
    resumed = optimize(vgg, content, [style], [cfg], state=resumed_state)
    assert resumed.status == "done" and resumed.step == full.step == sum(steps)
    torch.testing.assert_close(resumed.images[0], full.images[0], atol=1e-6, rtol=0)
    assert [h["total"] for h in resumed.history[0]] == [h["total"] for h in full.history[0]]
