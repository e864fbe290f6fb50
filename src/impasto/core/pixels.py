"""What the optimiser moves, and where it starts: pixels ↔ optimiser variables, initial images, Adam's moments
carried from one scale (or frame) to the next."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .preprocess import CaffePreprocess
from .settings import RunSettings
from .targets import resize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Pixels:
    """Maps optimiser variables ↔ RGB images in [0, 1] (``rgb``: the same; ``normalized``: ImageNet-normalised).

    ``project`` keeps Adam's ``rgb`` pixels in [0, 1] by clamping after each step (crowsonkb; simpler and faster
    than a sigmoid reparametrisation). L-BFGS is never clamped: clamping between its evaluations would change the
    point its curvature pairs describe (neural-style does not clamp either); its output is clamped once, on
    reading. The classic ``normalized`` recipe never clamped."""

    def __init__(self, param: str, optimizer: str, device: torch.device) -> None:
        self.normalized = param == "normalized"
        self.clamp = not self.normalized and optimizer != "lbfgs"
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def to_var(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std if self.normalized else img.clone()

    def to_img(self, var: torch.Tensor) -> torch.Tensor:  # unclamped, for the forward pass
        return var * self.std + self.mean if self.normalized else var

    def project(self, var: torch.Tensor) -> None:
        if self.clamp:
            with torch.no_grad():
                var.clamp_(0, 1)


def initial_images(content: torch.Tensor, cfgs: Sequence[RunSettings],
                   inits: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    """Each run's first image at ``content``'s size (the first scale): a given image (resized), the content,
    uniform noise in [0, 1] (``noise``), or neural-style's ``-init random`` (``gaussian``): the ImageNet mean
    colour plus Gaussian noise of σ 0.001 on Caffe's 0-255 scale, i.e. a nearly flat mean-grey image."""
    out = []
    for c, given in zip(cfgs, inits):
        if given is not None:
            out.append(resize(given, tuple(content.shape[-2:])))  # type: ignore[arg-type]
        elif c.init == "noise":
            g = torch.Generator().manual_seed(c.seed)
            out.append(torch.rand(content.shape, generator=g).to(content.device))
        elif c.init == "gaussian":
            g = torch.Generator().manual_seed(c.seed)
            mean_rgb = torch.tensor(CaffePreprocess.MEAN_BGR[::-1]).view(1, 3, 1, 1) / 255.0
            noise = torch.randn(content.shape, generator=g) * (0.001 / 255.0)
            out.append((mean_rgb + noise).to(content.device))
        else:
            out.append(content.clone())
    return out


def resize_moments(opt_state: dict, size: tuple[int, int]) -> dict:
    """Carry Adam's moments to another size (crowsonkb): resize them like the image. Their scale is set at the
    next scale's first step (``rescale_moments``), once its gradients are known."""
    for st in opt_state["state"].values():
        for k in ("exp_avg", "exp_avg_sq"):
            if k in st and tuple(st[k].shape[-2:]) != tuple(size):
                st[k] = F.interpolate(st[k], size=size, mode="bilinear", align_corners=False)
                if k == "exp_avg_sq":
                    st[k] = st[k].clamp_min(0)
    return opt_state


def rescale_moments(opt: torch.optim.Adam, params: Sequence[torch.Tensor]) -> list[float]:
    """Correct carried Adam moments that would throttle this scale's steps, before its first update; → each run's
    factor.

    Per-pixel gradients change with the image size: with the relative losses every term is a mean over positions,
    so for the same picture they scale as 1/(H·W), and moments carried unchanged leave the second moment too large
    and Adam's steps too short for much of the next scale (its β₂ = 0.99 forgets in ~100 steps). The factor is
    measured, not assumed (other conventions scale differently per term): s = rms(g) / rms(v̂); when s < 1 the first
    moment is × s and the second × s², keeping where the carried moments were large and small, and their sign.
    When s > 1 — the upsampled image is further from this scale's optimum than the carried moments know, as at the
    default schedule's first change, where s ≈ 2.9 after 200 steps at 128 px — they are left alone: the larger
    steps they give then measured better (bench/README.md, "Adam moments at scale changes": rescaling up as well
    ended 4-5% higher in loss at 256 px), so the correction only ever lifts a throttled step, never shortens one."""
    factors = []
    for group, p in zip(opt.param_groups, params):
        st = opt.state.get(p)
        if p.grad is None or not st or "exp_avg_sq" not in st:
            factors.append(1.0)
            continue
        beta2 = group["betas"][1]
        t = float(st["step"])
        v_hat = st["exp_avg_sq"] / (1 - beta2**t)
        s2 = (p.grad.float().pow(2).mean() / v_hat.mean().clamp_min(1e-30)).clamp(1e-6, 1.0)
        st["exp_avg_sq"].mul_(s2)
        st["exp_avg"].mul_(s2.sqrt())
        factors.append(float(s2.sqrt()))
    return factors
