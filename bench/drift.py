"""The long-clip drift of impasto video with one pass and with more (``passes``, Ruder et al. 2018 section 3.4).

A synthetic clip made here: a still photo (the background, which never moves) with a textured disc gliding back and
forth across its lower half, N frames (≥ 200) of a tiny size. Over hundreds of frames each warm-started frame can
carry its predecessor's small errors on: a still background darkens or its strokes drift. For each run, printed:

- drift of the static region (the top third, which the disc never enters): its mean luminance over the last 20
  frames less over the first 20 (and the largest frame-to-frame mean luminance change), and the same region's
  per-pixel change between the first and the last output (RMS);
- the style distance (bench/quality.py's meter at the frame size) over the last 20 frames / the first 20;
- the warping error (Lai et al.) of the whole clip with the input's DIS flows;
- CPU seconds for the clip (process time).

and each run against one pass, as ratios, in this run. Inputs: bench-only photos (``--scene``, ``--style``).

    python bench/drift.py --frames 200 --size 80 --runs 1 2       # ~1 CPU-hour on a loaded 2-core host
    python bench/drift.py --frames 24 --size 48 --steps 20 --later-steps 4 --pass-steps 2 --runs 1 2   # smoke
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import impasto
from common import OUT, machine, write_json
from impasto.video import consistency, flow
from quality import Meter
from video import distances, load_frames

GALLERY = Path("/work/gallery_inputs/adain")
WINDOW = 20  # frames averaged at each end of the clip


def clip(n: int, size: int, scene: Path) -> list[np.ndarray]:
    """n frames (size × 3/4·size): the still scene, a disc of the scene's own texture (turned, brightened) gliding
    left and right across the lower half, one full sweep every 60 frames."""
    w, h = size, size * 3 // 4
    back = np.array(Image.open(scene).convert("RGB").resize((w, h), Image.Resampling.LANCZOS))
    patch = np.clip(np.rot90(back).astype(np.int16)[:h, :h] + 60, 0, 255).astype(np.uint8)
    r = h // 5
    ys, xs = np.mgrid[0:h, 0:w]
    frames = []
    for t in range(n):
        cx = r + (w - 2 * r) * (0.5 - 0.5 * np.cos(2 * np.pi * t / 60))
        cy = h * 2 // 3
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        f = back.copy()
        sy, sx = np.clip(ys - cy + r, 0, patch.shape[0] - 1), np.clip(xs - int(cx) + r, 0, patch.shape[1] - 1)
        f[inside] = patch[sy[inside], sx[inside]]
        frames.append(f)
    return frames


def luminance(img: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) RGB in [0, 1] → (H, W) Rec. 601 luma."""
    return (img[0] * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0)


def measure(frames: list[torch.Tensor], inputs: list[np.ndarray], meter: Meter) -> dict[str, Any]:
    h = frames[0].shape[-2] // 3  # the static region: the top third
    lum = [float(luminance(f)[:h].mean()) for f in frames]
    style = distances(meter, inputs, frames)["style"]
    dis = flow.DISFlow()
    back = [dis(inputs[t], inputs[t - 1]) for t in range(1, len(inputs))]
    masks = [consistency.certainty(b, dis(inputs[t - 1], inputs[t])) for t, b in enumerate(back, 1)]
    first, last = luminance(frames[0])[:h], luminance(frames[-1])[:h]
    return {"luminance": lum, "style": style,
            "luminance_drift": float(np.mean(lum[-WINDOW:]) - np.mean(lum[:WINDOW])),
            "luminance_step_max": float(np.max(np.abs(np.diff(lum)))),
            "static_rms_first_last": float(((first - last) ** 2).mean().sqrt()),
            "style_drift": float(np.mean(style[-WINDOW:]) / np.mean(style[:WINDOW])),
            "style_mean": float(np.mean(style)),
            "warping_error": consistency.warping_error(frames, back, masks)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--size", type=int, default=80)
    p.add_argument("--steps", type=int, default=150, help="the first frame's steps (one scale)")
    p.add_argument("--later-steps", type=int, default=10)
    p.add_argument("--pass-steps", type=int, nargs="+", default=[10], help="steps a frame in the later passes")
    p.add_argument("--runs", type=int, nargs="+", default=[1, 2], help="the numbers of passes to compare")
    p.add_argument("--temporal-weight", type=float, help="[default: impasto's]")
    p.add_argument("--scene", type=Path, default=GALLERY / "chicago.jpg")
    p.add_argument("--style", type=Path, default=GALLERY / "brushstrokes.jpg")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = OUT / "drift"
    work.mkdir(parents=True, exist_ok=True)
    inputs = clip(args.frames, args.size, args.scene)
    source = work / "input"
    source.mkdir(exist_ok=True)
    for i, f in enumerate(inputs):
        Image.fromarray(f).save(source / f"{i:04d}.png")
    meter = Meter(Image.fromarray(inputs[0]), args.style, size=args.size)
    print(f"{machine()['cpu']}, load {machine()['loadavg']}; {args.frames} frames {inputs[0].shape[1]}x"
          f"{inputs[0].shape[0]}", flush=True)
    settings: dict[str, Any] = dict(size=args.size, start_size=None, steps=args.steps, later_steps=args.later_steps,
                                    device="cpu", cuts="none", progress=False, force=True)
    if args.temporal_weight is not None:
        settings["temporal_weight"] = args.temporal_weight
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(), "runs": {}}
    for passes in args.runs:
        for steps in args.pass_steps if passes > 1 else [args.pass_steps[0]]:
            name = f"passes{passes}" + (f"_steps{steps}" if passes > 1 else "")
            c0 = time.process_time()
            res = impasto.stylize_video(source, args.style, work / name, passes=passes, pass_steps=steps, **settings)
            cpu = time.process_time() - c0
            r = measure(load_frames(work / name, res.frames), inputs, meter)
            r["cpu"] = cpu
            results["runs"][name] = r
            print(f"{name:>16}: static luminance drift {r['luminance_drift']:+.4f} (largest step "
                  f"{r['luminance_step_max']:.4f}), static RMS first→last {r['static_rms_first_last']:.4f}, style "
                  f"last/first {r['style_drift']:.3f} (mean {r['style_mean']:.4f}), warping error "
                  f"{r['warping_error']:.5f}, {cpu:.0f} CPU s", flush=True)
    base = results["runs"].get("passes1")
    if base is not None:
        print("\nagainst one pass (ratios; drift: |run| / |one pass|, < 1 is less drift)")
        for name, r in results["runs"].items():
            if name == "passes1":
                continue
            print(f"{name:>16}: |luminance drift| {abs(r['luminance_drift']) / max(abs(base['luminance_drift']), 1e-9):.2f}"
                  f"  static RMS {r['static_rms_first_last'] / base['static_rms_first_last']:.2f}"
                  f"  |style drift - 1| {abs(r['style_drift'] - 1) / max(abs(base['style_drift'] - 1), 1e-9):.2f}"
                  f"  style mean {r['style_mean'] / base['style_mean']:.3f}"
                  f"  warping error {r['warping_error'] / base['warping_error']:.3f}  CPU {r['cpu'] / base['cpu']:.2f}")
    write_json(work / "drift.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
