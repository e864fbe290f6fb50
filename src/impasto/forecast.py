"""A run's config and inputs → what it will take on this machine (estimate.py's cost model × calibrate.py's figures),
and the line that says so before it starts.

Without a calibration (a library call with no progress bar, before anything measured this machine), the estimate
is made with ``NOMINAL`` figures: its total means little, but its *shape* (how the scales' steps compare) still
lets the progress ETA extrapolate from the first scale's measured steps (impasto.progress.Eta).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import calibrate
from .config import StyleConfig
from .core.optimize import plan
from .core.targets import style_size
from .core.tiling import halo_for
from .estimate import MINUTE, Estimate, Rates, duration, estimate, plan_cost, smaller_size

NOMINAL = Rates(overhead_s=0.02, vgg_flops_per_s=50e9, matmul_flops_per_s=100e9, startup_s=0.5)


@dataclass(frozen=True)
class Forecast:
    """An estimate and what it rests on."""

    estimate: Estimate
    calibration: calibrate.Calibration | None  # None: NOMINAL figures (the total is not this machine's)
    measured_now: bool  # the calibration was measured for this forecast (the first run on this machine)
    device: torch.device
    precision: str  # what ``auto`` resolved to

    @property
    def seconds(self) -> float:
        return self.estimate.seconds


def cost(cfgs: Sequence[StyleConfig], final: tuple[int, int], style_sizes: Sequence[tuple[int, int]]) -> list:
    """The plan's work (estimate.ScaleCost per scale) for a batch of ``cfgs`` at ``final`` (h, w), with style
    images of ``style_sizes`` (h, w) before they are fitted to each scale."""
    c0 = cfgs[0]
    sizes, steps = plan(c0, final)
    style_layers = sorted({n for c in cfgs for n, _ in c.style_layers})
    layers = sorted({*style_layers, *(n for c in cfgs if c.content_weight > 0 for n in c.content_layers)})
    per_scale = [[style_size(s, size, c0.style_scale, c0.style_fit, c0.size_side, least=8) for s in style_sizes]
                 for size in sizes]
    return plan_cost(sizes, steps, layers=layers or style_layers, style_layers=style_layers, style_sizes=per_scale,
                     runs=len(cfgs), tile=c0.tile_size, halo=halo_for(layers or style_layers),
                     style_loss=c0.style_loss, refresh=c0.neighbour_refresh, rotations=c0.neighbour_rotations)


def forecast(cfgs: Sequence[StyleConfig], final: tuple[int, int], style_sizes: Sequence[tuple[int, int]],
             device: torch.device, precision: str, *, measure: bool = True) -> Forecast:
    """The estimate for a batch here; ``measure``: calibrate this machine now if it never was (a few seconds)."""
    cal, now = calibrate.calibration(device, precision, measure_now=measure)
    est = estimate(cost(cfgs, final, style_sizes), cal.rates if cal is not None else NOMINAL)
    return Forecast(est, cal, now, device, precision)


def _quicker(cfg: StyleConfig, final: tuple[int, int], style_sizes: Sequence[tuple[int, int]],
             rates: Rates) -> list[str]:
    """Quicker ways to a first look, each with its estimate: the preview preset, a smaller size."""
    from .config import preset

    out = []
    quick = preset("preview")
    now = estimate(cost([cfg], final, style_sizes), rates).seconds
    if cfg.preset != "preview":
        fast = cfg.replace(**{k: getattr(quick, k) for k in ("steps", "first_steps", "scale_factor", "scale_steps")})
        seconds = estimate(cost([fast], final, style_sizes), rates).seconds
        if seconds < 0.8 * now:  # its schedule, not its settings, makes it quick: it is not always quicker
            out.append(f"--preset preview ({duration(seconds)})")
    side = max(final) if cfg.size_side == "long" else min(final)

    def at(size: int) -> float:
        scaled = (max(1, round(final[0] * size / side)), max(1, round(final[1] * size / side)))
        return estimate(cost([cfg], scaled, style_sizes), rates).seconds

    smaller = smaller_size(side, at)
    if smaller is not None:
        out.append(f"--size {smaller} ({duration(at(smaller))})")
    return out


def line(fc: Forecast, cfg: StyleConfig, final: tuple[int, int], style_sizes: Sequence[tuple[int, int]],
         runs: int = 1) -> str:
    """``impasto: about 3 min 10 s here (cpu, fp32, 2 threads; 4 scales up to 512x384, 200 steps)``, with quicker
    ways when it passes a minute."""
    sizes, steps = plan(cfg, final)
    where = f"{fc.device.type}, {fc.precision}" + (f", {torch.get_num_threads()} threads"
                                                   if fc.device.type == "cpu" else "")
    what = (f"{len(sizes)} scale{'s' if len(sizes) > 1 else ''} up to {final[1]}x{final[0]}, {sum(steps)} steps"
            + (f", {runs} runs" if runs > 1 else ""))
    if fc.calibration is None:
        return f"impasto: {what} (not timed: this machine is not calibrated; impasto doctor measures it)"
    text = f"impasto: {duration(fc.seconds)} here ({where}; {what})"
    if fc.seconds > MINUTE:
        ways = _quicker(cfg, final, style_sizes, fc.calibration.rates)
        if ways:
            text += "; for a quicker first look: " + " or ".join(ways)
    if fc.measured_now:
        text += f" [measured this machine once, {fc.calibration.took_s:.0f} s; impasto doctor shows the figures]"
    return text
