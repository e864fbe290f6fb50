"""The only optimisation loop: per scale, build targets once, then step the pixels; emit a Step per iteration.

Runs a *batch* of configs that share an image size and schedule (``batch_key``) through VGG together: each run keeps
its own image (a separate leaf tensor, so Adam's per-pixel state and learning rate are its own), its own weights and
targets. Per-item losses are summed, and the sum's gradient for one image is that image's own gradient, so a batch
gives the same pictures as one-by-one runs. L-BFGS couples its parameters, so it runs one config at a time.

The state (``RunState``) is explicit: it can be checkpointed, resumed, or used to start a video frame from the last.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from . import tiling
from .events import Step, StopToken
from .losses import STYLE_LOSSES, ContentLoss, moments, tv_loss
from .schedule import scale_sizes, steps_per_scale
from .vgg import VGG19

# Fields every run of a batch must share (the others — weights, layers, blend, lr, seed, init, ema — may differ).
BATCH_SHARED = (
    "size", "shape", "start_size", "scale_factor", "steps", "first_steps", "scale_steps", "optimizer", "weights", "pooling",
    "loss_norm", "style_loss", "param", "tol", "preserve_color", "style_scale", "device", "tile_size", "checkpoint",
    "precision",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TOL_WINDOW = 20


def batch_key(cfg: Any) -> tuple:
    """Configs with equal keys can run as one batch."""
    key = tuple((name, repr(getattr(cfg, name))) for name in BATCH_SHARED)
    return key + ((("solo", id(cfg)),) if cfg.optimizer == "lbfgs" else ())


@dataclass
class RunState:
    """Everything needed to continue a run (of a batch of ``n`` images)."""

    images: list[torch.Tensor]  # n × (1, 3, H, W) current output images in [0, 1] (EMA when on)
    step: int = 0  # steps done over all scales
    scale: int = 0  # index of the current scale
    scale_step: int = 0  # steps done within the current scale
    params: list[torch.Tensor] | None = None  # optimiser variables at the current scale (None: from ``images``)
    opt_state: dict | None = None  # optimiser.state_dict() at the current scale
    ema: list[torch.Tensor] | None = None
    ema_count: int = 0
    history: list[list[dict[str, float]]] = field(default_factory=list)
    status: str = "running"  # running | done | cancelled | diverged (every run of the batch diverged)
    message: str = ""
    elapsed: float = 0.0
    # Runs of a batch whose loss or pixels became NaN/Inf: index → message. Each keeps its last finite image and
    # stops moving; the others go on (a batch's gradients are per run, so one run's NaN cannot reach another's).
    diverged: dict[int, str] = field(default_factory=dict)

    def item_status(self, i: int) -> str:
        return "diverged" if i in self.diverged else self.status

    def item_message(self, i: int) -> str:
        return self.diverged.get(i, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        return cls(**d)


class _Pixels:
    """Maps optimiser variables ↔ RGB images in [0, 1] (``rgb``: the same; ``normalized``: ImageNet-normalised)."""

    def __init__(self, param: str, device: torch.device) -> None:
        self.normalized = param == "normalized"
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def to_var(self, img: torch.Tensor) -> torch.Tensor:
        return (img - self.mean) / self.std if self.normalized else img.clone()

    def to_img(self, var: torch.Tensor) -> torch.Tensor:  # unclamped for the forward pass (as the classic did)
        return var * self.std + self.mean if self.normalized else var

    def project(self, var: torch.Tensor) -> None:
        # Pixels are kept valid by clamping after each step (crowsonkb; simpler and faster than a sigmoid
        # reparametrisation, and exact for Adam). The classic "normalized" recipe never clamped.
        if not self.normalized:
            with torch.no_grad():
                var.clamp_(0, 1)


def resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    return F.interpolate(img, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def _style_size(style: torch.Tensor, content_size: tuple[int, int], style_scale: float) -> tuple[int, int]:
    long = max(1, round(max(content_size) * style_scale))
    h, w = style.shape[-2:]
    s = long / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


class Objective:
    """The loss of a batch at one scale: targets computed once (no autograd), per-item weights as tensors."""

    def __init__(self, model: VGG19, content: torch.Tensor, styles: Sequence[torch.Tensor], cfgs: Sequence[Any],
                 guide: torch.Tensor | None = None, tile: int = 0, precision: str | None = None) -> None:
        c0 = cfgs[0]
        n, dev = len(cfgs), content.device
        self.model, self.norm, self.guide = model, c0.loss_norm, guide
        self.amp = autocast_dtype(precision or getattr(c0, "precision", "fp32"), content.device)
        self.feature_scale = activation_scale(self.norm, getattr(model.preprocess, "name", ""))
        # Tiles only where the image is larger than a tile; the style images may need them on their own.
        self.tile = tile if tile and max(content.shape[-2:]) > tile else 0
        if self.tile and guide is not None:
            raise ValueError("spatial guides are not supported with tiles yet")
        self.content_layers = sorted({name for c in cfgs for name in c.content_layers if c.content_weight > 0})
        self.style_layers = sorted({name for c in cfgs for name, _ in c.style_layers})
        self.layers = sorted(set(self.content_layers) | set(self.style_layers))

        def per_item(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, device=dev, dtype=torch.float32)

        self.content_weight = per_item([c.content_weight for c in cfgs])
        self.style_weight = per_item([c.style_weight for c in cfgs])
        self.tv_weight = per_item([c.tv_weight for c in cfgs])
        # Content layers: relative → mean over a run's layers; classic/jcjohnson → sum (as those tools do).
        self.content_layer_w = {
            name: per_item([(1.0 / len(c.content_layers) if self.norm == "relative" else 1.0)
                            if name in c.content_layers else 0.0 for c in cfgs])
            for name in self.content_layers
        }
        # Style layer weights: relative → normalised to sum 1 per run, so style_weight keeps its meaning.
        self.style_layer_w = {}
        for name in self.style_layers:
            ws = []
            for c in cfgs:
                d = dict(c.style_layers)
                total = sum(d.values()) if self.norm == "relative" else 1.0
                ws.append(d.get(name, 0.0) / total)
            self.style_layer_w[name] = per_item(ws)

        with torch.no_grad():
            self.content_losses = {}
            if self.content_layers:
                feats = (tiling.tiled_features(self.run, content, self.content_layers, self.tile) if self.tile
                         else self.run(content, self.content_layers))
                self.content_losses = {k: ContentLoss(feats[k], self.norm) for k in self.content_layers}
            loss_cls = STYLE_LOSSES[c0.style_loss]
            self.loss_cls = loss_cls
            per_style = []
            for s in styles:
                if tile and max(s.shape[-2:]) > tile:  # style targets from the whole style image, tile by tile
                    acc = tiling.tiled_moments(self.run, s, self.style_layers, tile, moments)
                    per_style.append({k: loss_cls.stats_from_moments(*m, self.norm)  # type: ignore[attr-defined]
                                      for k, m in acc.items()})
                else:
                    feats = self.run(s, self.style_layers)
                    per_style.append({k: loss_cls.stats(v, self.norm) for k, v in feats.items()})  # type: ignore[attr-defined]
            blends = []
            for c in cfgs:
                b = list(c.style_blend) if c.style_blend is not None else [1.0] * len(styles)
                if len(b) != len(styles):
                    raise ValueError(f"style_blend has {len(b)} weights for {len(styles)} style images")
                total = sum(b)
                blends.append([w / total for w in b])
            blend = torch.tensor(blends, device=dev)  # (n, S)
            # Several styles are blended in target space (their Gram matrices / moments), then one loss per layer.
            self.style_losses = {}
            for k in self.style_layers:
                stacked = torch.cat([ps[k] for ps in per_style], dim=0)  # (S, C, C[+1])
                target = torch.einsum("ns,s...->n...", blend, stacked)
                self.style_losses[k] = loss_cls(target, self.norm)
        self.n = n

    def run(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """VGG's activations, under autocast when the precision asks for it. The losses run outside autocast, in
        fp32 (half-precision Gram matrices overflow), and so do the targets' statistics."""
        if self.amp is None:
            feats = self.model(x, layers)
        else:
            with torch.autocast(device_type=x.device.type, dtype=self.amp):
                feats = self.model(x, layers)
        if self.feature_scale != 1.0:
            feats = {k: v * self.feature_scale for k, v in feats.items()}
        return feats

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        """(n, 3, H, W) images → per-item loss terms, each (n,)."""
        feats = self.run(img, self.layers)
        zero = torch.zeros(self.n, device=img.device)
        content = sum((self.content_layer_w[k] * m(feats[k], self.guide)
                       for k, m in self.content_losses.items()), zero)
        style = sum((self.style_layer_w[k] * m(feats[k], self.guide) for k, m in self.style_losses.items()), zero)
        tv = tv_loss(img, self.norm) if bool((self.tv_weight > 0).any()) else zero
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return {"total": total, "content": content, "style": style, "tv": tv}

    def tiled_backward(self, images: Callable[[tiling.Box], torch.Tensor], size: tuple[int, int],
                       offset: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Back-propagate the whole-image loss tile by tile (see core/tiling.py); returns the detached terms.

        ``images(box)`` gives the (n, 3, h, w) crop of the current images, attached to the optimiser's variables.
        """
        h, w = size
        dev = self.content_weight.device
        zero = torch.zeros(self.n, device=dev)
        content_sq = {k: zero.clone() for k in self.content_losses}
        # Pass 1 (no autograd): moments of every style layer, and the content term, over all tiles.
        acc = tiling.tiled_moments(self.run, images((0, h, 0, w)).detach(),
                                   self.layers, self.tile, moments, offset)
        # The style loss and its gradient with respect to the moments: a small C×C computation.
        leaves: dict[str, list[torch.Tensor]] = {k: [t.requires_grad_(True) for t in acc[k][:2]] + [acc[k][2]]
                                                 for k in self.style_losses}
        style = zero.clone()
        for k, m in self.style_losses.items():
            shape = (acc[k][0].shape[1], *tiling.feature_shape(k, h, w))
            style = style + self.style_layer_w[k] * m.from_moments(*leaves[k], shape)
        flat = [t for k in leaves for t in leaves[k][:2]]
        grads = torch.autograd.grad((self.style_weight * style).sum(), flat, allow_unused=True)
        g = dict(zip([(k, i) for k in leaves for i in range(2)], grads))
        # Pass 2: each tile with autograd; the surrogate's gradient is the whole-image loss's on that tile.
        for interior, padded in tiling.boxes(h, w, self.tile, offset):
            feats = self.run(images(padded), self.layers)
            surrogate = torch.zeros((), device=dev)
            for k in self.style_losses:
                second, first, _ = moments(tiling.crop(feats[k], k, interior, padded))
                for i, t in ((0, second), (1, first)):
                    if g[(k, i)] is not None:
                        surrogate = surrogate + (g[(k, i)] * t).sum()
            for k, m in self.content_losses.items():
                target = tiling.global_crop(m.target, k, interior)
                sq = m.sum_sq(tiling.crop(feats[k], k, interior, padded), target)
                content_sq[k] += sq.detach()
                surrogate = surrogate + (self.content_weight * self.content_layer_w[k] * sq / m.normalizer()).sum()
            surrogate.backward()
        content = sum((self.content_layer_w[k] * content_sq[k] / m.normalizer()
                       for k, m in self.content_losses.items()), zero)
        tv = zero
        if bool((self.tv_weight > 0).any()):
            whole = images((0, h, 0, w))
            tv_terms = tv_loss(whole, self.norm)
            (self.tv_weight * tv_terms).sum().backward()
            tv = tv_terms.detach()
        style = style.detach()
        total = self.content_weight * content + self.style_weight * style + self.tv_weight * tv
        return {"total": total, "content": content, "style": style, "tv": tv}


# Caffe's network sees 0-255 pixels, torchvision's sees pixels divided by ~0.226 · 255: its activations are about
# this much larger (exactly so for the first convolution; deeper layers are near enough, ReLU and max pooling being
# positively homogeneous).
CAFFE_TO_TORCHVISION = 1.0 / (255.0 * sum(IMAGENET_STD) / 3)


def activation_scale(norm: str, preprocess: str) -> float:
    """The ``classic`` and ``jcjohnson`` conventions' weights were tuned on one network's activation scale
    (torchvision's and Caffe's respectively); with the other network, activations are rescaled to that scale so the
    weights keep their balance (with unscaled Caffe activations the classic style term is ~3000x too strong against
    the content term, and style weights 1e6 and 5e6 give the same picture). ``relative`` is scale-free."""
    if norm == "classic" and preprocess == "caffe":
        return CAFFE_TO_TORCHVISION
    if norm == "jcjohnson" and preprocess == "torchvision":
        return 1.0 / CAFFE_TO_TORCHVISION
    return 1.0


# What the per-step path does for speed, and what was measured (bench/per_iteration.py; bench/README.md has the
# figures and commands; CPU: the project's 2-core AMD EPYC with AVX512-BF16, 1 thread, torch 2.13.0):
# - Targets (content features, style Grams/moments) are computed once per scale, without autograd; VGG runs only
#   as deep as the deepest requested layer (relu5_1 by default: 29 of its 37 modules); VGG's weights never need
#   gradients; a batch of runs shares one forward/backward.
# - oneDNN (mkldnn) convolutions: kept (turning them off measured 0.57x at 512 px).
# - bf16 autocast for VGG with Grams and losses in fp32: 1.70x at 512 px, 1.78x at 256 px on the CPU, same quality
#   meter figures; the default on CPUs with native bf16 and on CUDA (api.resolve_precision). fp16 Grams overflow,
#   hence fp32 losses.
# - channels_last: 1.02-1.04x on the CPU, within the machine's noise: not used.
# - torch.compile: 1.01x per step at 512 px after a 200-250 s compile, which a default run (~600 steps, mostly at
#   small scales that recompile) never pays back: not used.
# - Not measured, because no GPU was available to this project so far: CUDA graphs, channels_last and
#   torch.compile on CUDA. On CUDA impasto uses autocast (bf16, or fp16 on GPUs without bf16) and nothing else
#   (bench/per_iteration.py times the CPU only so far: a GPU run is the next measurement to make).
def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for VGG, or None for fp32. ``auto`` here (when the caller has not resolved it for the
    machine, as ``api.resolve_precision`` does): bf16 on CUDA GPUs that have it (fp16 on older ones), fp32 elsewhere."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _init_images(content: torch.Tensor, cfgs: Sequence[Any], inits: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    out = []
    for c, given in zip(cfgs, inits):
        if given is not None:
            out.append(resize(given, tuple(content.shape[-2:])))
        elif c.init == "noise":
            g = torch.Generator().manual_seed(c.seed)
            out.append(torch.rand(content.shape, generator=g).to(content.device))
        else:
            out.append(content.clone())
    return out


def _resize_opt_state(opt_state: dict, size: tuple[int, int]) -> dict:
    """Carry Adam's moments to the next scale (crowsonkb): resize them like the image."""
    for st in opt_state["state"].values():
        for k in ("exp_avg", "exp_avg_sq"):
            if k in st:
                st[k] = F.interpolate(st[k], size=size, mode="bilinear", align_corners=False)
                if k == "exp_avg_sq":
                    st[k] = st[k].clamp_min(0)
    return opt_state


def optimize(
    model: VGG19,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor],
    cfgs: Sequence[Any],
    *,
    inits: Sequence[torch.Tensor | None] | None = None,
    state: RunState | None = None,
    callback: Callable[[Step], None] | None = None,
    stop: StopToken | None = None,
    style_transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    guide: torch.Tensor | None = None,
    precision: str | None = None,
) -> RunState:
    """Optimise a batch of images. ``content`` (1, 3, H, W) and ``styles`` (1, 3, h, w) are RGB in [0, 1] at the
    final size; coarser scales are resized from them. Returns the final state (``status`` says how it ended).

    ``style_transform(style, content)`` is applied to each style at each scale (colour control); ``guide`` is an
    optional spatial weight for every loss.
    """
    c0 = cfgs[0]
    if any(batch_key(c) != batch_key(c0) for c in cfgs[1:]):
        raise ValueError("configs in one batch must share " + ", ".join(BATCH_SHARED))
    if c0.optimizer == "lbfgs" and len(cfgs) > 1:
        raise ValueError("L-BFGS couples its parameters: run L-BFGS configs one at a time")
    device = content.device
    final = tuple(content.shape[-2:])
    sizes = scale_sizes(final, c0.start_size, c0.scale_factor)  # type: ignore[arg-type]
    plan = steps_per_scale(len(sizes), c0.steps, c0.first_steps, c0.scale_steps)
    total_steps = sum(plan)
    pixels = _Pixels(c0.param, device)
    n = len(cfgs)

    if state is None:
        first = resize(content, sizes[0])
        state = RunState(images=_init_images(first, cfgs, inits or [None] * n), history=[[] for _ in range(n)])
    state.status = "running"
    t0 = time.perf_counter() - state.elapsed
    torch.manual_seed(c0.seed)
    tile_rng = torch.Generator().manual_seed(c0.seed + state.step)  # tile offsets: reproducible, also on resume
    model.checkpoint = bool(c0.checkpoint)

    while state.scale < len(sizes):
        size = sizes[state.scale]
        content_s = resize(content, size)
        styles_s = [resize(s, _style_size(s, size, c0.style_scale)) for s in styles]
        if style_transform is not None:
            styles_s = [style_transform(s, content_s) for s in styles_s]
        objective = Objective(model, content_s, styles_s, cfgs, guide, tile=c0.tile_size, precision=precision)

        if state.params is None:
            state.params = [pixels.to_var(resize(img, size)).detach() for img in state.images]
        params = [p.detach().contiguous().clone().requires_grad_(True) for p in state.params]
        if c0.optimizer == "lbfgs":
            # jcjohnson/neural-style: lr 1, 100 corrections, no line search; one iteration per .step() so that
            # every iteration is observed and can be stopped.
            opt: torch.optim.Optimizer = torch.optim.LBFGS(
                params, lr=c0.lr, max_iter=1, history_size=100, tolerance_grad=-1, tolerance_change=-1)
        else:
            opt = torch.optim.Adam([{"params": [p], "lr": c.lr} for p, c in zip(params, cfgs)], betas=(0.9, 0.99))
        if state.opt_state is not None:
            opt.load_state_dict(state.opt_state)
        emas = state.ema

        last: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            for p in params:
                pixels.project(p)
            last.clear()
            if objective.tile:
                offset = tiling.random_offset(objective.tile, tile_rng)
                terms = objective.tiled_backward(
                    lambda b: torch.cat([pixels.to_img(p[..., b[0]:b[1], b[2]:b[3]]) for p in params]), size, offset)
                last.update(terms)
                return terms["total"].sum()
            img = torch.cat([pixels.to_img(p) for p in params])
            terms = objective(img)
            last.update({k: v.detach() for k, v in terms.items()})
            terms["total"].sum().backward()
            return terms["total"].sum()

        recent: list[float] = []
        while state.scale_step < plan[state.scale]:
            if stop is not None and stop.stopped:
                state.status, state.message = "cancelled", stop.reason
                break
            good = [p.detach().clone() for p in params]
            if c0.optimizer == "lbfgs":
                opt.step(closure)  # type: ignore[arg-type]
            else:
                closure()
                for i in state.diverged:  # Adam skips a variable without a gradient: diverged runs stand still
                    params[i].grad = None
                opt.step()
            for p in params:
                pixels.project(p)
            # One finiteness flag per run, read back once per step (losses are (n,); each run has its own pixels).
            finite = torch.stack([torch.isfinite(v) for v in last.values()]
                                 + [torch.stack([torch.isfinite(p).all() for p in params])]).all(0).tolist()
            for i, p in enumerate(params):
                if i not in state.diverged and not finite[i]:
                    with torch.no_grad():
                        p.copy_(good[i])
                    state.diverged[i] = (f"the loss became NaN/Inf at step {state.step + 1}; kept the last finite "
                                         "image (lower the learning rate, or use --optimizer lbfgs)")
            if len(state.diverged) == n:
                state.status, state.message = "diverged", state.diverged[min(state.diverged)]
                break
            state.step += 1
            state.scale_step += 1
            current = [pixels.to_img(p.detach()).clamp(0, 1) for p in params]
            if any(c.ema for c in cfgs):
                state.ema_count += 1
                if emas is None:
                    emas = [torch.zeros_like(x) for x in current]
                for i, c in enumerate(cfgs):
                    if c.ema:
                        emas[i].mul_(c.ema).add_(current[i], alpha=1 - c.ema)
                state.ema = emas
            outputs = [
                emas[i] / (1 - c.ema ** state.ema_count) if c.ema and emas is not None else current[i]
                for i, c in enumerate(cfgs)
            ]
            state.images = outputs
            elapsed = time.perf_counter() - t0
            for i in range(n):
                losses = {k: float(v[i]) for k, v in last.items()}
                state.history[i].append({"step": state.step, "scale": state.scale, "time": elapsed, **losses})
                if callback is not None:
                    callback(Step(step=state.step, total_steps=total_steps, scale=state.scale, size=size,
                                  losses=losses, elapsed=elapsed, index=i,
                                  render=lambda i=i: state.images[i][0].detach().clone()))
            if c0.tol is not None:
                recent.append(float(last["total"].sum()))
                if len(recent) > TOL_WINDOW:
                    old = recent.pop(0)
                    if old - recent[-1] < c0.tol * abs(old):
                        break
        state.params = [p.detach() for p in params]
        state.opt_state = opt.state_dict() if c0.optimizer == "adam" else None
        state.elapsed = time.perf_counter() - t0
        if state.status != "running":
            # Stopped or diverged: state.images already holds the last finite step's output (EMA included), except
            # before this scale's first step, when it is the previous (smaller) scale's: take the pixels then.
            if tuple(state.images[0].shape[-2:]) != tuple(size):
                state.images = [pixels.to_img(p).clamp(0, 1) for p in state.params]
            return state
        # Next scale: start from this scale's output, upsampled; carry Adam's moments.
        state.scale += 1
        state.scale_step = 0
        if state.scale < len(sizes):
            nxt = sizes[state.scale]
            state.params = [pixels.to_var(resize(img, nxt)).detach() for img in state.images]
            state.opt_state = _resize_opt_state(state.opt_state, nxt) if state.opt_state else None
            state.ema, state.ema_count = None, 0
    state.status = "done"
    return state


def total_steps(cfg: Any, final: tuple[int, int]) -> int:
    sizes = scale_sizes(final, cfg.start_size, cfg.scale_factor)
    return sum(steps_per_scale(len(sizes), cfg.steps, cfg.first_steps, cfg.scale_steps))


