"""Batched vs sequential: 4 variants of one recipe at 128 px, as one batch through VGG and one after another.

What a sweep gains from batching (``impasto.api.stylize_batch``, grouped by ``impasto.api.batch_key``). Both ways
run in this process, alternating (sequential, batched, sequential, ...) so that other load on a shared machine hits
both alike; the printed ratio is batched / sequential (below 1: batching is faster). A ``torch.mm`` line calibrates
the machine. The pictures of the two ways are compared too (they should agree to a few 1/255).

    python bench/batch.py [--size 128] [--steps 30] [--variants 4] [--chunk N] [--repeats 2] [--device auto]
        [--threads N]

``--chunk N`` runs the batched way as batches of at most N variants (what ``impasto sweep --batch N`` does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from common import PAIRS, machine, mm_gflops, pair_paths, set_threads
from impasto import preset, stylize, stylize_batch
from impasto.api import resolve_device
from impasto.samples import sample_content, sample_style


def inputs() -> tuple[object, object, str]:
    pair = next(iter(PAIRS))
    content, style = pair_paths(pair)
    if content.is_file() and style.is_file():
        return str(content), str(style), pair
    return sample_content(), sample_style(), "built-in samples"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--chunk", type=int, help="at most this many variants per batch [default: all in one]")
    ap.add_argument("--repeats", type=int, default=2, help="timed rounds of each way (medians are printed)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        set_threads(args.threads)
    content, style, what = inputs()
    # The study's recipe (gatys-adam) at a small size; the variants differ as a sweep's do: weights and rates.
    base = preset("gatys-adam", size=args.size, steps=args.steps, device=args.device)
    weights = [1e5, 1e6, 5e6, 1e7, 3e5, 3e6, 2e7, 5e5]
    cfgs = [
        base.replace(style_weight=weights[i % len(weights)], lr=0.003 if i % 2 == 0 else 0.001)
        for i in range(args.variants)
    ]
    device = resolve_device(args.device)

    optimising: dict[str, float] = {}  # the optimisation loop alone (Result.elapsed), without loading and targets

    def sequential() -> list[np.ndarray]:
        results = [stylize(content, style, c, progress=False) for c in cfgs]
        optimising["sequential"] = sum(r.elapsed for r in results)
        return [np.asarray(r.image, dtype=np.float32) for r in results]

    chunk = args.chunk or len(cfgs)

    def batched() -> list[np.ndarray]:
        results, optimising["batched"] = [], 0.0
        for i in range(0, len(cfgs), chunk):
            part = stylize_batch(content, style, cfgs[i : i + chunk])
            optimising["batched"] += part[0].elapsed
            results += part
        return [np.asarray(r.image, dtype=np.float32) for r in results]

    stylize_batch(content, style, [c.replace(steps=2) for c in cfgs[:2]])  # warm-up: weights, allocator, kernels
    stylize(content, style, cfgs[0].replace(steps=2), progress=False)
    cal = mm_gflops()
    times: dict[str, list[tuple[float, float]]] = {"sequential": [], "batched": []}
    pictures: dict[str, list[np.ndarray]] = {}
    for _ in range(args.repeats):
        for name, fn in (("sequential", sequential), ("batched", batched)):
            t, c = time.perf_counter(), time.process_time()
            pictures[name] = fn()
            times[name].append((time.perf_counter() - t, time.process_time() - c))

    m = machine()
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['threads']} threads), device {device}, "
        f"load {m['loadavg'][0]:.1f}"
    )
    print(
        f"calibration: torch.mm fp32 {cal['n']}x{cal['n']}: {cal['median']:.1f} GFLOP/s (best {cal['best']:.1f}; "
        f"{cal['cpu']:.1f} per CPU-second) at {cal['threads']} threads"
    )
    print(f"work: {args.variants} variants of gatys-adam, {args.size} px, {args.steps} Adam steps each, batches of "
          f"{chunk}; inputs: {what}")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    for name, (wall, cpu) in med.items():
        print(f"{name:>10}: {wall:7.2f} s wall, {cpu:7.2f} s CPU  (median of {args.repeats})")
    print(
        f"optimisation loop alone (last round): sequential {optimising['sequential']:.2f} s, batched "
        f"{optimising['batched']:.2f} s, ratio {optimising['batched'] / optimising['sequential']:.3f}"
    )
    diff = max(float(np.abs(a - b).max()) for a, b in zip(pictures["sequential"], pictures["batched"]))
    print(f"pictures: batched vs sequential differ by at most {diff:.0f}/255")
    print(
        f"ratio batched/sequential: {med['batched'][0] / med['sequential'][0]:.3f} wall, "
        f"{med['batched'][1] / med['sequential'][1]:.3f} CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
