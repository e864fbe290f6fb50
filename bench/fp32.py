"""fp32 on a CPU without bf16 units: this checkout's engine against today's code path, in one process, alternating.

Variants (each a full default run's steps through core.optimize, fp32, the bundled weights):

- ``today``: the network as it was before this change: NCHW weights (``VGG19(channels_last=False)``), so oneDNN
  reorders every convolution's input and output;
- ``channels_last``: the option in core/vgg.py (not the default: measured slower idle): the weights channels-last, the activations follow, and
  the Gram matrices read them without a copy (core/losses.moments);
- ``threads=N`` (``--threads N``): the default (NCHW) network at N threads (torch.set_num_threads), to see whether fewer
  threads than cores help on a loaded machine.

Runs alternate A, B, A, B … (``--repeats`` rounds); each run's seconds a step is the median of its steps after the
second (warm-up), and each variant's figure is the median over its runs; printed as the ratio against ``today``,
measured in the same process at the same moment, which is what is meaningful on a shared machine. The final images
are compared with today's: max and mean |Δ| in 0..255 (Adam turns rounding differences into small pixel changes).

    python bench/fp32.py                         # 256 px, the default schedule (128 → 256 px, 160 steps)
    python bench/fp32.py --size 512 --repeats 3  # what the lead times on a quiet fp32 host
    python bench/fp32.py --size 96 --steps 4 --repeats 1   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import machine, mm_gflops, set_threads
from impasto.config import StyleConfig
from impasto.core.optimize import optimize
from impasto.core.preprocess import CaffePreprocess
from impasto.core.vgg import VGG19
from impasto.io.images import pil_to_tensor
from impasto.samples import sample_content, sample_style
from impasto.weights import load_state_dict


def network(channels_last: bool) -> VGG19:
    state, _ = load_state_dict("bundled")
    model = VGG19(CaffePreprocess(), channels_last=channels_last)
    model.load_state_dict(state, strict=False)
    return model


def run(model: VGG19, content: torch.Tensor, style: torch.Tensor, cfg: StyleConfig) -> tuple[float, torch.Tensor]:
    """(median seconds a step after the warm-up, the final image)."""
    clock: list[float] = []
    state = optimize(model, content, [style], [cfg], callback=lambda s: clock.append(s.elapsed), precision="fp32")
    steps = [b - a for a, b in zip(clock[1:], clock[2:])]
    return statistics.median(steps), state.images[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256, help="long side of the result [default: 256]")
    ap.add_argument("--start-size", type=int, default=128, help="the first scale [default: 128, impasto's]")
    ap.add_argument("--steps", type=int, default=40, help="steps a scale, twice that at the first [default: 40]")
    ap.add_argument("--repeats", type=int, default=2, help="rounds of A, B, … [default: 2]")
    ap.add_argument("--threads", type=int, nargs="*", default=[], help="also try these thread counts")
    args = ap.parse_args()

    cores = torch.get_num_threads()
    content = pil_to_tensor(sample_content(args.size, args.size * 3 // 4))  # (1, 3, H, W) in [0, 1]
    style = pil_to_tensor(sample_style(args.size, args.size))
    cfg = StyleConfig(size=args.size, start_size=args.start_size if args.start_size < args.size else None,
                      steps=args.steps, device="cpu", precision="fp32")
    today, now = network(False), network(True)
    variants: dict[str, tuple[VGG19, int]] = {"today": (today, cores), "channels_last": (now, cores)}
    for n in args.threads:
        variants[f"threads={n}"] = (today, n)  # the default network (NCHW) at n threads
    info = machine()
    print(f"{info.get('cpu', '?')} · {cores} threads · fp32 · mm {mm_gflops()['median']:.0f} GFLOP/s · "
          f"{args.size} px from {cfg.start_size or args.size} px, {args.steps} steps a scale")
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    images: dict[str, torch.Tensor] = {}
    t0 = time.perf_counter()
    for r in range(args.repeats):
        for name, (model, threads) in variants.items():
            set_threads(threads)
            s, images[name] = run(model, content, style, cfg)
            seconds[name].append(s)
            print(f"  round {r + 1} {name:<14} {s:.3f} s a step")
    set_threads(cores)
    base = statistics.median(seconds["today"])
    print(f"\n{'variant':<14} {'s a step':>9} {'vs today':>9} {'paired':>8} {'max |Δ|':>8} {'mean |Δ|':>9}"
          "   (|Δ| in 0..255)")
    for name in variants:
        med = statistics.median(seconds[name])
        # each round's ratio to the run of today just before it, the median over rounds: steadier than the ratio
        # of medians when the machine's load changes from one round to the next
        paired = statistics.median(b / a for a, b in zip(seconds["today"], seconds[name]))
        diff = (images[name] - images["today"]).abs() * 255
        print(f"{name:<14} {med:>9.3f} {med / base:>8.3f}x {paired:>7.3f}x {diff.max().item():>8.2f} "
              f"{diff.mean().item():>9.3f}")
    print(f"({time.perf_counter() - t0:.0f} s in all; ratios below 1 are faster than today)")


if __name__ == "__main__":
    main()
