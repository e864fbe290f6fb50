"""The yardstick: the classic PyTorch style-transfer exercise, re-implemented separately from impasto, as the CSCI611
report ran it (../shared/reference/seed-report.txt), with the quality meter read every ``--every`` steps.

What is the exercise's, kept as it was:
- the model is an ``nn.Sequential`` of VGG19's 37 feature modules with in-place ReLUs; features are recorded by
  looping over *all* 37 modules (to pool5, though nothing past relu5_1 is used), at '0','5','10','19','21','28'
  named conv1_1…conv5_1 and conv4_2 — the in-place ReLU that follows each overwrites it, so they are relu outputs;
- the optimised variable is the *normalised* image (ImageNet mean/std), initialised from the content, never clamped
  (only the displayed image is clipped); Adam, lr 0.003, 2000 steps;
- Gram = F Fᵀ (unnormalised); content = mean((T − C)²) at conv4_2; style = Σ_l w_l · mean((G_T − G_S)²) / (d·h·w)
  with w = 1, .75, .2, .2, .2; total = 1 · content + 1e6 · style;
- the style image is resized to the content's exact shape (its aspect ratio is not kept).

Where it departs, and why:
- Weights: the bundled original VGG19 (``impasto.weights.load_state_dict("bundled")``; torchvision's are not
  reachable offline). Those weights expect Caffe input (BGR, 0–255, minus the BGR mean), so before the module loop
  the normalised image x is mapped to what they expect: rgb = x·std + mean, then caffe = flip(rgb)·255 − mean_bgr.
  That map is a fixed per-channel affine, so the optimisation (Adam's steps, lr, init) stays exactly the exercise's
  in normalised pixel space; only the network sees correctly scaled input, as torchvision's VGG did in the report.
- Size: the exercise's ``transforms.Resize(400)`` sets the *short* side (a 4:3 photo became 533×400); here the long
  side is 400, so the baseline and impasto optimise the same 400×300 pixels. Resampling: PIL bilinear (as
  torchvision's Resize on PIL images).

    python bench/baseline.py golden_gate+starry_night [--steps 2000] [--size 400] [--every 100] [--threads 1]

writes bench/out/baseline_<pair>_<size>.json (the trace) and .png (the final image).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from common import OUT, PAIRS, Clock, machine, mm_gflops, pair_paths, set_threads, write_json
from impasto.weights import load_state_dict
from quality import Meter

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
CAFFE_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
LAYERS = {"0": "conv1_1", "5": "conv2_1", "10": "conv3_1", "19": "conv4_1", "21": "conv4_2", "28": "conv5_1"}
STYLE_WEIGHTS = {"conv1_1": 1.0, "conv2_1": 0.75, "conv3_1": 0.2, "conv4_1": 0.2, "conv5_1": 0.2}
CONTENT_WEIGHT, STYLE_WEIGHT, LR = 1.0, 1e6, 0.003


def build_vgg() -> nn.Sequential:
    """VGG19's 37 feature modules, torchvision's layout, in-place ReLUs, the bundled weights, frozen."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    modules: list[nn.Module] = []
    in_ch = 3
    for v in cfg:
        if v == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = int(v)
    vgg = nn.Sequential(*modules)
    state, _ = load_state_dict("bundled")  # torchvision layout: features.N.weight
    vgg.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg.eval()


def load_image(path: Path, max_size: int = 400, shape: tuple[int, int] | None = None) -> torch.Tensor:
    """→ normalised (1, 3, H, W): long side ``max_size`` (see the module docstring), or exactly ``shape``."""
    image = Image.open(path).convert("RGB")
    if shape is None:
        s = min(1.0, max_size / max(image.size))
        shape = (round(image.height * s), round(image.width * s))
    image = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    t = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    return (t - MEAN) / STD


def to_caffe(x: torch.Tensor) -> torch.Tensor:
    """Normalised RGB → what the original VGG19 weights expect (BGR, 0–255, minus the BGR mean)."""
    return (x * STD + MEAN).flip(1) * 255.0 - CAFFE_MEAN_BGR


# Caffe's VGG sees 0-255 pixels where torchvision's saw (x - mean) / std: its activations are ~255 · 0.226 ≈ 58x
# larger (exactly at conv1_1; ReLU and max pooling are positively homogeneous). ``--activation-scale torchvision``
# divides the recorded features by that, so that the content (∝ F²) and style (∝ F⁴) terms keep the balance they had
# with torchvision's weights, as impasto's gatys-adam preset does (core/optimize.py, activation_scale).
TORCHVISION_SCALE = 1.0 / (255.0 * float(STD.mean()))
activation_scale = 1.0


def get_features(image: torch.Tensor, model: nn.Sequential, layers: dict[str, str] = LAYERS) -> dict[str, torch.Tensor]:
    features = {}
    x = to_caffe(image)
    for name, layer in model._modules.items():  # all 37 modules, as the exercise did
        x = layer(x)
        if name in layers:
            features[layers[name]] = x
    if activation_scale != 1.0:  # after the loop: the in-place ReLUs have made the recorded tensors relu outputs
        features = {k: v * activation_scale for k, v in features.items()}
    return features


def gram_matrix(tensor: torch.Tensor) -> torch.Tensor:
    _, d, h, w = tensor.size()
    flat = tensor.view(d, h * w)
    return torch.mm(flat, flat.t())


def im_convert(x: torch.Tensor) -> torch.Tensor:
    """The displayed image: de-normalised and clipped to [0, 1] (the exercise's ``im_convert``)."""
    return (x.detach() * STD + MEAN).clamp(0, 1)


def loss_fn(
    target: torch.Tensor, vgg: nn.Sequential, content_features: dict, style_grams: dict
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """→ (total, content term, style term), the exercise's formula."""
    target_features = get_features(target, vgg)
    content_loss = torch.mean((target_features["conv4_2"] - content_features["conv4_2"]) ** 2)
    style_loss = 0
    for layer, weight in STYLE_WEIGHTS.items():
        target_feature = target_features[layer]
        _, d, h, w = target_feature.shape
        target_gram = gram_matrix(target_feature)
        layer_style_loss = weight * torch.mean((target_gram - style_grams[layer]) ** 2)
        style_loss = style_loss + layer_style_loss / (d * h * w)
    return CONTENT_WEIGHT * content_loss + STYLE_WEIGHT * style_loss, content_loss, style_loss  # type: ignore[return-value]


def run(pair: str, steps: int = 2000, size: int = 400, every: int = 100, out: Path | None = None) -> dict:
    content_path, style_path = pair_paths(pair)
    out = out or OUT / f"baseline_{pair}_{size}"
    meter = Meter(content_path, style_path)
    vgg = build_vgg()
    content = load_image(content_path, size)
    style = load_image(style_path, shape=tuple(content.shape[-2:]))
    trace: dict = {
        "tool": "baseline",
        "activation_scale": activation_scale,
        "pair": pair,
        "size": list(content.shape[-2:]),
        "steps": steps,
        "machine": machine(),
        "calibration_start": mm_gflops(),
        "records": [],
    }

    def record(step: int, clock: Clock, terms: tuple[float, float, float]) -> None:
        clock.pause()
        d = meter(im_convert(target))
        cal = mm_gflops(seconds=0.1)["median"]
        trace["records"].append(
            {
                "step": step,
                "time": clock.now(),
                "cpu": clock.cpu(),
                "loss": terms[0],
                "content_loss": terms[1],
                "style_loss": terms[2],
                "gflops": cal,
                **d,
            }
        )
        print(
            f"step {step:5d}  wall {clock.now():7.0f}s  cpu {clock.cpu():7.0f}s  loss {terms[0]:10.4g} "
            f"(content {terms[1]:.4g}, style {terms[2]:.4g})  style {d['style']:.4f}  content {d['content']:.4f}"
            f"  mm {cal:.1f} GFLOP/s",
            flush=True,
        )
        write_json(out.with_suffix(".partial.json"), trace)  # survives an interrupted run
        clock.resume()

    clock = Clock()
    content_features = get_features(content, vgg)
    style_features = get_features(style, vgg)
    style_grams = {layer: gram_matrix(style_features[layer]) for layer in style_features}
    target = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([target], lr=LR)
    with torch.no_grad():
        record(0, clock, tuple(float(v) for v in loss_fn(target, vgg, content_features, style_grams)))
    step_times = []
    for ii in range(1, steps + 1):
        t = time.perf_counter()
        total_loss, content_loss, style_loss = loss_fn(target, vgg, content_features, style_grams)
        optimizer.zero_grad()
        total_loss.backward()
        optimizer.step()
        step_times.append(time.perf_counter() - t)
        if ii % every == 0 or ii == steps:
            record(ii, clock, (total_loss.item(), content_loss.item(), style_loss.item()))
    trace["total_time"], trace["total_cpu"] = clock.now(), clock.cpu()
    trace["median_step"] = float(np.median(step_times))
    trace["calibration_end"] = mm_gflops()
    trace["final"] = {k: trace["records"][-1][k] for k in ("style", "content")}
    write_json(out.with_suffix(".json"), trace)
    out.with_suffix(".partial.json").unlink(missing_ok=True)
    Image.fromarray((im_convert(target)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(
        out.with_suffix(".png")
    )
    print(
        f"{pair}: {steps} steps in {trace['total_time']:.0f} s wall, {trace['total_cpu']:.0f} s CPU (median step {trace['median_step']:.3f} s) at "
        f"{trace['calibration_end']['median']:.1f} GFLOP/s (mm, {torch.get_num_threads()} thread(s)); "
        f"final style {trace['final']['style']:.4f} content {trace['final']['content']:.4f} → {out}.json"
    )
    return trace


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pair", choices=sorted(PAIRS))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--size", type=int, default=400)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="trace path without suffix (default bench/out/baseline_PAIR_SIZE)")
    p.add_argument(
        "--activation-scale",
        choices=("caffe", "torchvision"),
        default="caffe",
        help="the loss on the bundled (Caffe) network's activations as they are, or rescaled to "
        "torchvision's (see TORCHVISION_SCALE)",
    )
    a = p.parse_args(argv)
    set_threads(a.threads)
    global activation_scale
    activation_scale = TORCHVISION_SCALE if a.activation_scale == "torchvision" else 1.0
    run(a.pair, a.steps, a.size, a.every, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
