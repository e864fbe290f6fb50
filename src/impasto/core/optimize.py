"""The only optimisation loop: per scale, build the objective once, then step the pixels; emit a Step per iteration.

Runs a *batch* of configs that share a schedule (``settings.ENGINE_SHARED``) through VGG together: each run keeps
its own image (a separate leaf tensor, so Adam's per-pixel state and learning rate are its own), its own weights and
targets. Per-item losses are summed, and the sum's gradient for one image is that image's own gradient, so a batch
gives the same pictures as one-by-one runs. L-BFGS couples its parameters, so it runs one config at a time.

The state (``RunState``, core/state.py) is explicit: it can be checkpointed, resumed, cut and joined, or used to
start a video frame from the last (``state.warm_start``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from . import tiling
from .events import Step, StopToken
from .objective import Guides, Objective
from .pixels import Pixels, initial_images, rescale_moments, resize_moments
from .schedule import scale_sizes, steps_per_scale
from .settings import ENGINE_SHARED, RunSettings
from .state import RunState
from .targets import StyleTargets, Transform, resize
from .vgg import VGG19

TOL_WINDOW = 20
# The default betas (crowsonkb's; β₂ 0.99 adapts to each scale's gradients within ~100 steps). β₁ is always this one;
# β₂ is each run's ``adam_beta2`` (the classic exercise ran PyTorch's default, 0.999).
ADAM_BETAS = (0.9, 0.99)
Callback = Callable[[Step], None]


def plan(cfg: RunSettings, final: tuple[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """The schedule: every scale's (h, w), and the steps at each."""
    sizes = scale_sizes(final, cfg.start_size, cfg.scale_factor, cfg.size_side)
    return sizes, steps_per_scale(len(sizes), cfg.steps, cfg.first_steps, cfg.scale_steps)


def total_steps(cfg: RunSettings, final: tuple[int, int]) -> int:
    return sum(plan(cfg, final)[1])


def initial_state(content: torch.Tensor, cfgs: Sequence[RunSettings],
                  inits: Sequence[torch.Tensor | None] | None = None) -> RunState:
    """A batch's state before its first step: each run's first image at the first scale."""
    first = resize(content, plan(cfgs[0], tuple(content.shape[-2:]))[0][0])  # type: ignore[arg-type]
    images = initial_images(first, cfgs, inits or [None] * len(cfgs))
    return RunState(images=images, history=[[] for _ in cfgs])


def check_batch(cfgs: Sequence[RunSettings]) -> None:
    c0 = cfgs[0]
    for c in cfgs[1:]:
        differ = [k for k in ENGINE_SHARED if getattr(c, k) != getattr(c0, k)]
        if differ:
            raise ValueError("configs in one batch must share " + ", ".join(differ))
    if c0.optimizer == "lbfgs" and len(cfgs) > 1:
        raise ValueError("L-BFGS couples its parameters: run L-BFGS configs one at a time")


class _Scale:
    """One scale of a batch: its objective (targets built once), the optimiser and the variables it moves."""

    def __init__(self, objective: Objective, state: RunState, cfgs: Sequence[RunSettings], pixels: Pixels,
                 size: tuple[int, int], tile_rng: torch.Generator) -> None:
        self.objective, self.pixels, self.size, self.tile_rng = objective, pixels, size, tile_rng
        if state.params is None:
            state.params = [pixels.to_var(resize(img, size)).detach() for img in state.images]
        self.params = [p.detach().contiguous().clone().requires_grad_(True) for p in state.params]
        c0 = cfgs[0]
        if c0.optimizer == "lbfgs":
            # jcjohnson/neural-style: lr 1, 100 corrections, no line search; one iteration per .step() so that
            # every iteration is observed and can be stopped.
            self.opt: torch.optim.Optimizer = torch.optim.LBFGS(
                self.params, lr=c0.lr, max_iter=1, history_size=100, tolerance_grad=-1, tolerance_change=-1)
        else:
            self.opt = torch.optim.Adam([{"params": [p], "lr": c.lr, "betas": (ADAM_BETAS[0], c.adam_beta2)}
                                         for p, c in zip(self.params, cfgs)])
        if state.opt_state is not None:
            self.opt.load_state_dict(resize_moments(state.opt_state, size))
        self.last: dict[str, torch.Tensor] = {}

    def closure(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        self.last.clear()
        obj, to_img = self.objective, self.pixels.to_img
        if obj.tile:
            offset = tiling.random_offset(obj.tile, self.tile_rng)
            terms = obj.tiled_backward(
                lambda b: torch.cat([to_img(p[..., b[0]:b[1], b[2]:b[3]]) for p in self.params]), self.size, offset)
        else:
            terms = obj(torch.cat([to_img(p) for p in self.params]))
            terms["total"].sum().backward()
        self.last.update({k: v.detach() for k, v in terms.items()})
        return self.last["total"].sum()

    def step(self, state: RunState) -> list[dict[str, float]]:
        """One iteration of every run; → each run's loss terms. One read-back from the device per step: the terms
        and, with them, whether each run's loss and pixels stayed finite (a run that did not is put back)."""
        good = [p.detach().clone() for p in self.params]
        if isinstance(self.opt, torch.optim.LBFGS):
            self.opt.step(self.closure)  # type: ignore[arg-type]
        else:
            self.closure()
            for i in state.diverged:  # Adam skips a variable without a gradient: diverged runs stand still
                self.params[i].grad = None
            if state.rescale_pending:
                rescale_moments(self.opt, self.params)  # type: ignore[arg-type]
                state.rescale_pending = False
            self.opt.step()
        for p in self.params:
            self.pixels.project(p)
        names = list(self.last)
        values = torch.stack([self.last[k].float() for k in names])  # (terms, n)
        finite = torch.cat([torch.isfinite(values), torch.stack([torch.isfinite(p).all() for p in self.params])[None]])
        rows = torch.cat([values, finite.all(0, keepdim=True).float()]).tolist()  # the one sync
        for i, p in enumerate(self.params):
            if i not in state.diverged and not rows[-1][i]:
                with torch.no_grad():
                    p.copy_(good[i])
                state.diverged[i] = (f"the loss became NaN/Inf at step {state.step + 1}; kept the last finite "
                                     "image (lower the learning rate, or use --optimizer lbfgs)")
        return [{k: rows[j][i] for j, k in enumerate(names)} for i in range(len(self.params))]

    def prepare(self) -> None:
        """Targets that depend on the current result (the neighbour term's) are computed from these images."""
        if not self.objective.prepares:  # Gram, W2: nothing to compute, no images to assemble
            return
        with torch.no_grad():
            self.objective.prepare(torch.cat([self.pixels.to_img(p.detach()).clamp(0, 1) for p in self.params]))

    def images(self) -> list[torch.Tensor]:
        return [self.pixels.to_img(p.detach()).clamp(0, 1) for p in self.params]

    def save(self, state: RunState) -> None:
        state.params = [p.detach() for p in self.params]
        state.opt_state = self.opt.state_dict() if isinstance(self.opt, torch.optim.Adam) else None


def _update_outputs(state: RunState, cfgs: Sequence[RunSettings], current: list[torch.Tensor]) -> None:
    """The runs' output images after a step: the iterate, or its bias-corrected moving average (``ema``)."""
    if any(c.ema for c in cfgs):
        state.ema_count += 1
        if state.ema is None:
            state.ema = [torch.zeros_like(x) for x in current]
        for i, c in enumerate(cfgs):
            if c.ema:
                state.ema[i].mul_(c.ema).add_(current[i], alpha=1 - c.ema)
    state.images = [state.ema[i] / (1 - c.ema ** state.ema_count) if c.ema and state.ema is not None else current[i]
                    for i, c in enumerate(cfgs)]


def _next_scale(state: RunState, pixels: Pixels, size: tuple[int, int] | None) -> None:
    """Start the next scale from this one's output, upsampled; carry Adam's moments (resized, then rescaled)."""
    state.scale += 1
    state.scale_step = 0
    if size is not None:
        state.params = [pixels.to_var(resize(img, size)).detach() for img in state.images]
        state.rescale_pending = state.opt_state is not None
        state.ema, state.ema_count = None, 0


def optimize(
    model: VGG19,
    content: torch.Tensor,
    styles: Sequence[torch.Tensor] | StyleTargets,
    cfgs: Sequence[RunSettings],
    *,
    inits: Sequence[torch.Tensor | None] | None = None,
    state: RunState | None = None,
    callback: Callback | None = None,
    stop: StopToken | None = None,
    style_transform: Transform | None = None,
    guides: Guides | None = None,
    precision: str | None = None,
    frame: int | None = None,
    extra: dict | None = None,
) -> RunState:
    """Optimise a batch of images. ``content`` (1, 3, H, W) and ``styles`` (1, 3, h, w) are RGB in [0, 1] at the
    final size (or ``styles`` a StyleTargets kept across calls); coarser scales are resized from them. Returns the
    final state (``status`` says how it ended). ``style_transform(style, content)`` is applied to each style at
    each scale (colour control); ``guides`` are the spatial guides (objective.Guides), at the final size."""
    check_batch(cfgs)
    c0, n = cfgs[0], len(cfgs)
    sizes, steps = plan(c0, tuple(content.shape[-2:]))  # type: ignore[arg-type]
    targets = styles if isinstance(styles, StyleTargets) else StyleTargets(
        styles, c0.style_scale, transform=style_transform, fit=c0.style_fit, side=c0.size_side)
    pixels = Pixels(c0.param, c0.optimizer, content.device)
    state = state if state is not None else initial_state(content, cfgs, inits)
    state.status = "running"
    t0 = time.perf_counter() - state.elapsed
    torch.manual_seed(c0.seed)
    tile_rng = torch.Generator().manual_seed(c0.seed + state.step)  # tile offsets: reproducible, also on resume
    model.checkpoint = bool(c0.checkpoint)

    while state.scale < len(sizes):
        size = sizes[state.scale]
        content_s = resize(content, size)
        objective = Objective(model, content_s, targets, cfgs, guides.at(size) if guides else None,
                              precision=precision, extra=extra)
        scale = _Scale(objective, state, cfgs, pixels, size, tile_rng)
        scale.prepare()
        last_scale = state.scale == len(sizes) - 1
        recent: list[float] = []
        while state.scale_step < steps[state.scale]:
            if stop is not None and stop.stopped:
                state.status, state.message = "cancelled", stop.reason
                break
            if last_scale and objective.refresh and state.scale_step and state.scale_step % objective.refresh == 0:
                scale.prepare()
            losses_per_run = scale.step(state)
            if len(state.diverged) == n:
                state.status, state.message = "diverged", state.diverged[min(state.diverged)]
                break
            state.step += 1
            state.scale_step += 1
            _update_outputs(state, cfgs, scale.images())
            elapsed = time.perf_counter() - t0
            for i, losses in enumerate(losses_per_run):
                state.history[i].append({"step": state.step, "scale": state.scale, "time": elapsed, **losses})
                if callback is not None:
                    callback(Step(step=state.step, total_steps=sum(steps), scale=state.scale, scales=len(sizes),
                                  size=size, losses=losses, elapsed=elapsed, index=i, frame=frame))
            if c0.tol is not None:  # the batch's loss improved by less than tol over the last TOL_WINDOW steps
                recent.append(sum(r["total"] for r in losses_per_run))
                if len(recent) > TOL_WINDOW:
                    old = recent.pop(0)
                    if old - recent[-1] < c0.tol * abs(old):
                        break
        scale.save(state)
        state.elapsed = time.perf_counter() - t0
        if state.status != "running":
            # Stopped or diverged: state.images already holds the last finite step's output (EMA included), except
            # before this scale's first step, when it is the previous (smaller) scale's: take the pixels then.
            if tuple(state.images[0].shape[-2:]) != tuple(size):
                state.images = [pixels.to_img(p).clamp(0, 1) for p in state.params]  # type: ignore[union-attr]
            return state
        _next_scale(state, pixels, sizes[state.scale + 1] if state.scale + 1 < len(sizes) else None)
    state.status = "done"
    return state
