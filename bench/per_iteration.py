"""Per-iteration speed at 256 and 512 px: impasto's iteration (defaults: forward to relu5_1, losses, backward, Adam
step) against the classic baseline's (bench/baseline.py: all 37 modules, in-place ReLUs), and the fraction of the
machine's fp32 matmul rate that impasto's iteration reaches.

FLOPs are counted from the layer shapes: the 16 3×3 convolutions up to relu5_1, 2·Cin·9·Cout·H·W each. The
backward pass of a frozen network computes only the input gradients (one more conv per conv, the weights' gradients
are not needed), so an iteration is ≈ 2× the forward FLOPs (the usual 3× counts weight gradients too; it is printed
beside for reference). Gram matrices, losses and the Adam step are a few percent and are not counted.
``fraction = FLOPs / time / torch.mm GFLOP/s``, the mm rate measured before and after each timing, at the same
thread count. Each figure is given on wall time and on process CPU time (the machine is shared; see common.py).

Variants tried on impasto's iteration (core is not changed; the model and input are prepared here):
``out-of-place`` (every ReLU out of place, as core did before it rectified unkept convolution outputs in place),
``channels_last``, ``no-mkldnn`` (oneDNN off), ``compile`` (torch.compile of the VGG forward; compile time and
payback reported), ``bf16`` (core's ``precision="bf16"``: VGG under CPU autocast, Grams and losses in fp32), and threads. ``loop`` is
the real optimisation loop (core.optimize.optimize) at fp32, timed between its callbacks.

    python bench/per_iteration.py [--sizes 256 512] [--threads 1] [--variants ...]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

import baseline
import impasto
from common import OUT, machine, mm_gflops, pair_paths, set_threads, write_json
from impasto.core.objective import Objective
from impasto.core.optimize import ADAM_BETAS, optimize
from impasto.core.vgg import LAYER_NAMES
from impasto.weights import load_vgg
from quality import _tensor

_CHANNELS = (64, 128, 256, 512, 512)
VARIANTS = ("loop", "eager", "out-of-place", "channels_last", "no-mkldnn", "bf16", "compile", "baseline")


def conv_flops(height: int, width: int, last: str = "relu5_1") -> int:
    """Forward FLOPs (2 per multiply-add) of VGG19's convolutions up to ``last``."""
    total, h, w, cin = 0, height, width, 3
    for name in LAYER_NAMES[: LAYER_NAMES.index(last) + 1]:
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        elif name.startswith("conv"):
            cout = _CHANNELS[int(name[4]) - 1]
            total += 2 * cin * 9 * cout * h * w
            cin = cout
    return total


def images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A content and a style image, size × size (real photos when ../shared/images is there; else noise)."""
    try:
        c, s = pair_paths("golden_gate+starry_night")
        return tuple(
            _tensor(Image.open(p).convert("RGB").resize((size, size), Image.Resampling.BICUBIC)) for p in (c, s)
        )  # type: ignore[return-value]
    except OSError:
        g = torch.Generator().manual_seed(0)
        return torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, size, size, generator=g)


def timed(step: Callable[[], Any], warm: int, n: int) -> dict[str, Any]:
    """Median wall and CPU seconds of ``step`` after ``warm`` untimed calls, with the mm rate around it."""
    first = time.perf_counter()
    for _ in range(warm):
        step()
    first = time.perf_counter() - first
    before = mm_gflops(seconds=0.2)
    walls, cpus, syss = [], [], []
    for _ in range(n):
        t, c, s = time.perf_counter(), time.process_time(), os.times().system
        step()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        syss.append(os.times().system - s)
    after = mm_gflops(seconds=0.2)
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "sys": statistics.median(syss),
        "warm_wall": first,
        "mm_wall": (before["median"] + after["median"]) / 2,
        "mm_cpu": (before["cpu"] + after["cpu"]) / 2,
        "walls": walls,
        "cpus": cpus,
    }


def impasto_step(content: torch.Tensor, style: torch.Tensor, variant: str) -> Callable[[], None]:
    """One iteration as core/optimize.py does it (core/objective.py's Objective → sum → backward → Adam → clamp),
    with ``variant``. The objective takes its precision from the config and its tiles from ``cfg.tile_size``."""
    precision = "bf16" if variant == "bf16" else "fp32"
    cfg = impasto.StyleConfig(size=max(content.shape[-2:]), start_size=None, device="cpu", precision=precision)
    model = load_vgg("bundled")
    fmt = torch.contiguous_format
    if variant == "channels_last":
        fmt = torch.channels_last
        model = copy.deepcopy(model).to(memory_format=fmt)
    if variant == "out-of-place":
        model = copy.deepcopy(model)
        model._layer = lambda idx, x, wanted: model.features[idx](x)  # type: ignore[method-assign]
    if variant == "compile":
        model = copy.deepcopy(model)
        model.forward = torch.compile(model.forward)  # type: ignore[method-assign]
    objective = Objective(model, content.contiguous(memory_format=fmt), [style.contiguous(memory_format=fmt)], [cfg])
    param = content.clone().contiguous(memory_format=fmt).requires_grad_(True)
    opt = torch.optim.Adam([param], lr=cfg.lr, betas=ADAM_BETAS)

    def ctx() -> contextlib.AbstractContextManager:
        if variant == "no-mkldnn":
            return torch.backends.mkldnn.flags(enabled=False)
        return contextlib.nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with ctx():
            terms = objective(param)
            terms["total"].sum().backward()
        opt.step()
        with torch.no_grad():
            param.clamp_(0, 1)

    return step


def impasto_loop(content: torch.Tensor, style: torch.Tensor, warm: int, n: int) -> dict[str, Any]:
    """The real loop (core.optimize.optimize, defaults at one scale): per-step times from the callback."""
    cfg = impasto.StyleConfig(
        size=max(content.shape[-2:]), start_size=None, steps=warm + n, device="cpu", precision="fp32"
    )
    stamps: list[tuple[float, float, float]] = []
    before = mm_gflops(seconds=0.2)
    t0 = (time.perf_counter(), time.process_time())
    optimize(
        load_vgg("bundled"),
        content,
        [style],
        [cfg],
        callback=lambda s: stamps.append((time.perf_counter(), time.process_time(), os.times().system)),
    )
    after = mm_gflops(seconds=0.2)
    walls = [b[0] - a[0] for a, b in zip(stamps[warm - 1 :], stamps[warm:])]
    cpus = [b[1] - a[1] for a, b in zip(stamps[warm - 1 :], stamps[warm:])]
    syss = [b[2] - a[2] for a, b in zip(stamps[warm - 1 :], stamps[warm:])]
    return {
        "wall": statistics.median(walls),
        "cpu": statistics.median(cpus),
        "sys": statistics.median(syss),
        "warm_wall": stamps[warm - 1][0] - t0[0],
        "mm_wall": (before["median"] + after["median"]) / 2,
        "mm_cpu": (before["cpu"] + after["cpu"]) / 2,
        "walls": walls,
        "cpus": cpus,
    }


def baseline_step(content: torch.Tensor, style: torch.Tensor) -> Callable[[], None]:
    vgg = baseline.build_vgg()
    content_n, style_n = ((x - baseline.MEAN) / baseline.STD for x in (content, style))
    content_features = baseline.get_features(content_n, vgg)
    style_grams = {k: baseline.gram_matrix(v) for k, v in baseline.get_features(style_n, vgg).items()}
    target = content_n.clone().requires_grad_(True)
    opt = torch.optim.Adam([target], lr=baseline.LR)

    def step() -> None:
        total, _, _ = baseline.loss_fn(target, vgg, content_features, style_grams)
        opt.zero_grad()
        total.backward()
        opt.step()

    return step


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("-n", type=int, default=3, help="timed iterations per figure")
    p.add_argument("--tag", default="", help="suffix of the output file bench/out/per_iteration{TAG}.json")
    a = p.parse_args(argv)
    rows = []
    for threads in a.threads:
        set_threads(threads)
        for size in a.sizes:
            content, style = images(size)
            flops = 2 * conv_flops(size, size)
            for variant in a.variants:
                if variant == "loop":
                    r = impasto_loop(content, style, warm=2, n=a.n)
                elif variant == "baseline":
                    r = timed(baseline_step(content, style), warm=1, n=a.n)
                else:
                    r = timed(impasto_step(content, style, variant), warm=2 if variant == "compile" else 1, n=a.n)
                r.update(
                    variant=variant,
                    size=size,
                    threads=threads,
                    gflop=flops / 1e9,
                    fraction_wall=flops / r["wall"] / 1e9 / r["mm_wall"],
                    fraction_cpu=flops / r["cpu"] / 1e9 / r["mm_cpu"],
                )
                rows.append(r)
                print(
                    f"{threads}t {size:4d}px {variant:14s} wall {r['wall']:6.2f}s cpu {r['cpu']:6.2f}s "
                    f"(sys {r['sys']:5.2f}s) "
                    f"(first {r['warm_wall']:6.1f}s)  {flops / r['cpu'] / 1e9:6.1f} GFLOP/cpu-s  "
                    f"mm {r['mm_wall']:5.1f}/{r['mm_cpu']:5.1f}  fraction {r['fraction_wall']:.2f} wall "
                    f"{r['fraction_cpu']:.2f} cpu",
                    flush=True,
                )
    print(f"\n{machine()}")
    print(
        "FLOPs per iteration (2x forward to relu5_1): "
        + ", ".join(f"{s}px {2 * conv_flops(s, s) / 1e9:.0f} GFLOP" for s in a.sizes)
    )
    print(
        f"{'threads':>7s} {'size':>5s} {'variant':14s} {'cpu s':>7s} {'sys s':>6s} {'vs eager':>8s} "
        f"{'vs baseline':>11s} {'fraction(cpu)':>13s} {'fraction(wall)':>14s}"
    )
    for r in rows:
        same = {x["variant"]: x for x in rows if x["size"] == r["size"] and x["threads"] == r["threads"]}
        eager, base = same.get("eager"), same.get("baseline")
        vs_e = f"{eager['cpu'] / r['cpu']:.2f}x" if eager else "-"
        vs_b = f"{base['cpu'] / r['cpu']:.2f}x" if base else "-"
        print(
            f"{r['threads']:7d} {r['size']:5d} {r['variant']:14s} {r['cpu']:7.2f} {r['sys']:6.2f} {vs_e:>8s} {vs_b:>11s} "
            f"{r['fraction_cpu']:13.2f} {r['fraction_wall']:14.2f}"
        )
    write_json(OUT / f"per_iteration{a.tag}.json", {"machine": machine(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
