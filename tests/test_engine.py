"""The optimisation loop, the schedule, colour control, batching and state (the layering: tests/test_layering.py)."""

from __future__ import annotations

import pytest
import torch

import impasto
from impasto.config import StyleConfig
from impasto.core import colour
from impasto.core.events import StopToken
from impasto.core.objective import Objective
from impasto.core.optimize import initial_state, optimize
from impasto.core.schedule import scale_sizes, steps_per_scale
from impasto.core.targets import resize
from impasto.io.images import pil_to_tensor
from impasto.weights import load_vgg

SMALL = dict(size=48, start_size=None, steps=8, first_steps=None, precision="fp32")


def style_targets(objective: Objective) -> dict[str, torch.Tensor]:
    """The (first region's) style target of every layer."""
    style = next(t for t in objective.terms if t.name == "style")
    return {k: m.target for k, m in style.losses[0].items()}


@pytest.fixture(scope="module")
def vgg():
    return load_vgg("bundled")


@pytest.fixture
def tensors(content_img, style_img, style2_img):
    from impasto.io.images import resize_long

    return (pil_to_tensor(resize_long(content_img, 48)), pil_to_tensor(resize_long(style_img, 48)),
            pil_to_tensor(resize_long(style2_img, 48)))


@pytest.mark.parametrize("optimizer,lr", [("adam", 0.02), ("lbfgs", 1.0)])
def test_both_optimisers_lower_the_loss(vgg, tensors, optimizer, lr):
    content, style, _ = tensors
    cfg = StyleConfig(**SMALL, optimizer=optimizer, lr=lr, style_weight=100.0)
    state = optimize(vgg, content, [style], [cfg])
    totals = [h["total"] for h in state.history[0]]
    assert state.status == "done" and len(totals) == 8
    assert totals[-1] < 0.7 * totals[0]


def test_seed_makes_runs_reproducible(vgg, tensors):
    content, style, _ = tensors
    a = optimize(vgg, content, [style], [StyleConfig(**SMALL, init="noise", seed=7)]).images[0]
    b = optimize(vgg, content, [style], [StyleConfig(**SMALL, init="noise", seed=7)]).images[0]
    c = optimize(vgg, content, [style], [StyleConfig(**SMALL, init="noise", seed=8)]).images[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_blend_one_zero_equals_the_single_style_target(vgg, tensors):
    content, style, style2 = tensors
    single = Objective(vgg, content, [style], [StyleConfig(**SMALL)])
    blended = Objective(vgg, content, [style, style2], [StyleConfig(**SMALL, style_blend=(1.0, 0.0))])
    for k in style_targets(single):
        torch.testing.assert_close(style_targets(single)[k], style_targets(blended)[k])
    half = Objective(vgg, content, [style, style2], [StyleConfig(**SMALL, style_blend=(3.0, 3.0))])
    other = Objective(vgg, content, [style2], [StyleConfig(**SMALL)])
    k = "relu3_1"
    mid = (style_targets(single)[k] + style_targets(other)[k]) / 2  # weights normalised to sum 1
    torch.testing.assert_close(style_targets(half)[k], mid)


def test_schedule_ends_at_the_requested_size():
    sizes = scale_sizes((300, 451), 128)
    assert sizes[-1] == (300, 451) and sizes[0][1] == 128
    assert all(b[1] > a[1] for a, b in zip(sizes, sizes[1:]))
    assert scale_sizes((64, 64), None) == [(64, 64)] and scale_sizes((64, 64), 128) == [(64, 64)]
    assert steps_per_scale(3, 100, 300) == [300, 100, 100]
    assert steps_per_scale(3, 100, None) == [200, 100, 100] and steps_per_scale(1, 100, 300) == [100]
    assert steps_per_scale(4, 100, None, (300, 50)) == [300, 50, 50, 50]
    assert StyleConfig(scale_steps="300,50").scale_steps == (300, 50)
    for final in [(512, 384), (2048, 1365), (130, 97)]:
        assert scale_sizes(final, 128)[-1] == final


def test_each_scale_starts_from_the_previous_result(vgg, tensors):
    content, style, _ = tensors
    cfg = StyleConfig(size=48, start_size=24, steps=1, first_steps=1, lr=1e-12, init="noise", seed=3)
    seen = []
    state = initial_state(content, [cfg])  # the engine's Steps are plain data; images are read from the state
    optimize(vgg, content, [style], [cfg], state=state,
             callback=lambda s: seen.append((s.size, state.images[s.index].clone())))
    sizes = [s for s, _ in seen]
    assert all(tuple(img.shape[-2:]) == size for size, img in seen)
    assert sizes[0] == (18, 24) and sizes[-1] == (36, 48)
    # With a vanishing learning rate each scale's image is the previous one upsampled: noise, not the content.
    g = torch.Generator().manual_seed(3)
    noise = torch.rand((1, 3, 18, 24), generator=g)
    expected = noise
    for size in sizes[1:]:
        expected = resize(expected, size)
    torch.testing.assert_close(state.images[0], expected, atol=1e-4, rtol=0)


def test_stop_and_resume_equal_an_uninterrupted_run(vgg, tensors):
    content, style, _ = tensors
    cfg = StyleConfig(size=48, start_size=32, steps=4, first_steps=4)
    full = optimize(vgg, content, [style], [cfg])
    stop = StopToken()
    part = optimize(vgg, content, [style], [cfg], stop=stop,
                    callback=lambda s: stop.stop("test") if s.step == 5 else None)
    assert part.status == "cancelled" and part.step == 5
    done = optimize(vgg, content, [style], [cfg], state=part)
    assert done.status == "done" and done.step == 8
    torch.testing.assert_close(done.images[0], full.images[0], atol=1e-4, rtol=0)


def test_batch_equals_one_by_one(vgg64, tensors):
    """In float64 (vgg64): in float32 a few pixels of 5000 came out 0.02 apart."""
    content, style, _ = (t.double() for t in tensors)
    net = vgg64
    cfgs = [StyleConfig(**SMALL, style_weight=w, lr=lr) for w, lr in ((10.0, 0.02), (100.0, 0.05))]
    cfgs.append(StyleConfig(**SMALL, style_layers=(("relu2_1", 1.0),), content_layers=("relu3_1",)))
    batch = optimize(net, content, [style], cfgs)
    for i, cfg in enumerate(cfgs):
        alone = optimize(net, content, [style], [cfg])
        assert alone.images[0].dtype == torch.float64
        torch.testing.assert_close(batch.images[i], alone.images[0], atol=1e-9, rtol=0)


def test_a_diverged_run_stands_still_while_its_batch_mates_go_on(vgg, tensors, monkeypatch):
    content, style, _ = tensors
    cfgs = [StyleConfig(**SMALL), StyleConfig(**SMALL, style_weight=100.0)]
    alone = optimize(vgg, content, [style], cfgs[:1])
    calls = {"n": 0}
    real = Objective.__call__

    def poisoned(self, img):  # run 1's loss is NaN at the third step (and only there)
        calls["n"] += 1
        terms = real(self, img)
        if calls["n"] == 3:
            terms = {**terms, "total": terms["total"] * torch.tensor([1.0, float("nan")])}
        return terms

    monkeypatch.setattr(Objective, "__call__", poisoned)
    seen: dict[tuple[int, int], torch.Tensor] = {}
    state = initial_state(content, cfgs)
    optimize(vgg, content, [style], cfgs, state=state,
             callback=lambda s: seen.__setitem__((s.index, s.step), state.images[s.index][0].clone()))
    assert state.status == "done" and state.step == SMALL["steps"]
    assert state.item_status(0) == "done" and state.item_status(1) == "diverged"
    assert "step 3" in state.item_message(1) and state.item_message(0) == ""
    torch.testing.assert_close(state.images[0], alone.images[0], atol=2e-3, rtol=0)  # undisturbed
    assert torch.equal(state.images[1][0], seen[(1, 2)])  # the last finite image, held from then on
    assert torch.equal(seen[(1, SMALL["steps"])], seen[(1, 3)])


def test_nan_stops_and_keeps_the_last_finite_image(vgg, tensors, monkeypatch):
    content, style, _ = tensors
    calls = {"n": 0}
    real = Objective.__call__

    def poisoned(self, img):
        calls["n"] += 1
        terms = real(self, img)
        if calls["n"] == 4:
            terms = {k: v * float("nan") for k, v in terms.items()}
        return terms

    monkeypatch.setattr(Objective, "__call__", poisoned)
    images = []
    state = initial_state(content, [StyleConfig(**SMALL)])
    optimize(vgg, content, [style], [StyleConfig(**SMALL)], state=state,
             callback=lambda s: images.append(state.images[0][0].clone()))
    assert state.status == "diverged" and "lower the learning rate" in state.message
    assert len(images) == 3 and torch.isfinite(state.images[0]).all()
    torch.testing.assert_close(state.images[0][0], images[-1])


def test_luminance_transfer_keeps_the_content_chroma(content_img, style_img):
    r = impasto.stylize(content_img, style_img, **SMALL, preserve_color="luminance", progress=False)
    out = colour.rgb_to_ycbcr(pil_to_tensor(r.image))
    from impasto.io.images import resize_exact

    ref = colour.rgb_to_ycbcr(pil_to_tensor(resize_exact(content_img, r.image.height, r.image.width)))
    # Chroma equal up to 8-bit rounding and clamping; luminance changed by the style.
    assert (out[:, 1:] - ref[:, 1:]).abs().mean() < 0.01
    assert (out[:, :1] - ref[:, :1]).abs().mean() > 0.01


def test_histogram_matching_gives_the_target_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    source = torch.rand(1, 3, 32, 32, generator=g) * 0.5 + 0.1
    target = torch.rand(1, 3, 32, 32, generator=g) * 0.3 + 0.4
    target[:, 0] = target[:, 0] * 0.5 + target[:, 1] * 0.5  # correlated channels
    out = colour.match_histogram(source, target)
    m_o, c_o = colour._mean_cov(out[0])
    m_t, c_t = colour._mean_cov(target[0])
    torch.testing.assert_close(m_o, m_t, atol=1e-4, rtol=0)
    torch.testing.assert_close(c_o, c_t, atol=1e-4, rtol=0)


def test_ycbcr_round_trip():
    x = torch.rand(2, 3, 5, 7)
    torch.testing.assert_close(colour.ycbcr_to_rgb(colour.rgb_to_ycbcr(x)), x, atol=1e-5, rtol=0)


def test_public_api_is_sorted_and_importable():
    assert impasto.__all__ == sorted(impasto.__all__)
    for name in impasto.__all__:
        assert hasattr(impasto, name), name


def test_every_module_imports():
    import importlib
    import pkgutil

    for mod in pkgutil.walk_packages(impasto.__path__, "impasto."):
        if not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)


def _grad(vgg, content, style, cfg, tile=0, checkpoint=False):
    vgg.checkpoint = checkpoint
    try:
        obj = Objective(vgg, content, [style], [cfg.replace(tile_size=tile)])
        x = content.clone().add_(0.05 * torch.randn_like(content)).clamp_(0, 1).requires_grad_(True)
        if obj.tile:
            terms = obj.tiled_backward(lambda b: x[..., b[0]:b[1], b[2]:b[3]], tuple(x.shape[-2:]), (16, 32))
        else:
            terms = obj(x)
            terms["total"].sum().backward()
        return x.grad, {k: v.detach() for k, v in terms.items()}
    finally:
        vgg.checkpoint = False


def test_checkpointed_and_plain_backward_agree(vgg, tensors):
    content, style, _ = tensors
    cfg = StyleConfig(**SMALL)
    torch.manual_seed(0)
    g_plain, _ = _grad(vgg, content, style, cfg)
    torch.manual_seed(0)
    g_ckpt, _ = _grad(vgg, content, style, cfg, checkpoint=True)
    torch.testing.assert_close(g_ckpt, g_plain, rtol=1e-5, atol=1e-9)


def test_memory_estimate_shrinks_with_tiles_and_checkpointing():
    from impasto.core.memory import estimate_bytes

    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    plain = estimate_bytes(4096, 4096, layers)
    assert estimate_bytes(4096, 4096, layers, tile=1024) < plain / 5
    assert estimate_bytes(4096, 4096, layers, checkpoint=True) < plain * 0.6
    assert estimate_bytes(2048, 2048, layers) > 3.5 * estimate_bytes(1024, 1024, layers)  # ~pixels, at scale


def test_bf16_autocast_keeps_losses_in_fp32_and_close(vgg, tensors):
    content, style, _ = tensors
    a = optimize(vgg, content, [style], [StyleConfig(**SMALL)])
    b = optimize(vgg, content, [style], [StyleConfig(**{**SMALL, "precision": "bf16"})])
    obj = Objective(vgg, content, [style], [StyleConfig(**{**SMALL, "precision": "bf16"})])
    assert all(t.dtype == torch.float32 for t in style_targets(obj).values())
    fa, fb = a.history[0][-1]["total"], b.history[0][-1]["total"]
    assert abs(fa - fb) < 0.05 * fa
    assert (a.images[0] - b.images[0]).abs().mean() < 0.02


def _rescaled(vgg, factors: list[float], preprocess: str | None = None):
    """A copy of ``vgg`` whose i-th convolution is multiplied by factors[i] (its bias by the product so far): ReLU and
    max pooling being positively homogeneous, every layer's activations come out times the product of the factors up
    to it, a different scale per layer, as two trainings of one architecture may differ."""
    import copy

    from impasto.core.preprocess import make_preprocess

    out = copy.deepcopy(vgg)
    if preprocess is not None:
        out.preprocess = make_preprocess(preprocess)
    convs = [m for m in out.features if isinstance(m, torch.nn.Conv2d)]
    total = 1.0
    for conv, k in zip(convs, factors):
        total *= k
        conv.weight.mul_(k)
        conv.bias.mul_(total)
    return out


def test_classic_convention_is_calibrated_per_layer_on_caffe_weights(vgg, tensors):
    """The invariance the calibration promises: scaling each layer of the (Caffe-preprocessed) network by its own
    factor does not change what the calibrated classic loss optimises: the same loss and the same gradient at any
    image (so the same path for any optimiser). With torchvision preprocessing the classic formula is the report's,
    raw: the same rescaling changes its gradient's direction (so this test can tell the two apart)."""
    content, style, _ = tensors
    gen = torch.Generator().manual_seed(5)
    factors = (0.3 + 3 * torch.rand(16, generator=gen)).tolist()
    cfg = impasto.preset("gatys-adam", size=48, precision="fp32")

    def loss_and_grad(net, img):
        x = img.clone().requires_grad_(True)
        total = Objective(net, content, [style], [cfg])(x)["total"].sum()
        total.backward()
        return total.detach(), x.grad.flatten()

    images = [(content + 0.2 * torch.randn(content.shape, generator=gen)).clamp(0, 1) for _ in range(2)]
    for img in images:
        (la, ga), (lb, gb) = loss_and_grad(vgg, img), loss_and_grad(_rescaled(vgg, factors), img)
        torch.testing.assert_close(lb, la, rtol=1e-4, atol=0)
        torch.testing.assert_close(gb, ga, rtol=1e-3, atol=1e-4 * float(ga.abs().max()))
    tv, tv_scaled = _rescaled(vgg, [1.0] * 16, "torchvision"), _rescaled(vgg, factors, "torchvision")
    (_, gc), (_, gd) = loss_and_grad(tv, images[0]), loss_and_grad(tv_scaled, images[0])
    assert float(torch.nn.functional.cosine_similarity(gc, gd, dim=0)) < 0.99


def test_classic_convention_stays_the_reports_formula_with_torchvision_weights(vgg, tensors):
    """torchvision preprocessing: content = mean((F − P)²), style = Σ_l w_l·mean((G − A)²)/(C·H·W), G = F Fᵀ
    unnormalised, total = α·content + β·style, as the report's loop computed them. Caffe preprocessing: the
    calibrated terms (each layer over its own target's scale, Grams over positions, summed with the same weights, β times
    CLASSIC_CALIBRATION)."""
    from impasto.core.objective import CLASSIC_CALIBRATION

    content, style, _ = tensors
    img = (content + 0.1 * torch.randn_like(content)).clamp(0, 1)
    cfg = impasto.preset("gatys-adam", size=48, precision="fp32")
    layers = dict(cfg.style_layers)
    for net, raw in ((_rescaled(vgg, [1.0] * 16, "torchvision"), True), (vgg, False)):
        got = Objective(net, content, [style], [cfg])(img)
        f = net(img, [*layers, "relu4_2"])
        p, s = net(content, ["relu4_2"]), net(style, list(layers))

        def gram(x):  # unnormalised (classic); over positions (the relative formula, sizes may differ)
            flat = x[0].flatten(1)
            return flat @ flat.T / (1 if raw else flat.shape[1])

        if raw:
            want_c = ((f["relu4_2"] - p["relu4_2"]) ** 2).mean()
            want_s = sum(w * ((gram(f[k]) - gram(s[k])) ** 2).mean() / f[k][0].numel() for k, w in layers.items())
            weight_s = cfg.style_weight
        else:
            want_c = ((f["relu4_2"] - p["relu4_2"]) ** 2).sum() / (p["relu4_2"] ** 2).sum()
            want_s = sum(w * ((gram(f[k]) - gram(s[k])) ** 2).sum() / (gram(s[k]) ** 2).sum()
                         for k, w in layers.items())
            weight_s = cfg.style_weight * CLASSIC_CALIBRATION
        torch.testing.assert_close(got["content"][0], want_c, rtol=1e-4, atol=0)
        torch.testing.assert_close(got["style"][0], want_s, rtol=1e-4, atol=0)
        torch.testing.assert_close(got["total"][0], cfg.content_weight * want_c + weight_s * want_s, rtol=1e-4, atol=0)


def test_auto_precision_resolves_per_device(monkeypatch):
    """One policy in one place (core/precision.py): the api, the recipe and the engine all resolve through it."""
    from impasto import api, runtime
    from impasto.core import precision
    from impasto.core.precision import autocast_dtype

    assert api.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert autocast_dtype("auto", torch.device("cpu")) is torch.bfloat16  # the engine follows the same rule
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert api.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ValueError, match="precision"):
        precision.resolve_precision("fp8", torch.device("cpu"))
