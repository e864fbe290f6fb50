"""Same seed and settings → same pixels across a restructure: render a fixed set of small runs through the public
API and save them (``--save DIR``), or compare against a saved set (``--compare DIR``).

The cases cover the paths that a refactor must not change: single-scale Adam (relative, classic/normalized,
wasserstein), a batch, EMA, histogram colour, luminance, tiles, several styles with a blend, and noise init. Runs
whose pictures a fix is meant to change (the coarse-to-fine Adam carry, L-BFGS, the jcjohnson TV term) are listed
separately and reported, not required to match.

    python bench/golden.py --save /tmp/golden_old     # on the old commit (PYTHONPATH=<old checkout>/src)
    python bench/golden.py --compare /tmp/golden_old  # on the new one: max |Δ| per case
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import impasto
from impasto.samples import sample_content, sample_style

BASE = dict(size=64, start_size=None, steps=12, seed=3, precision="fp32", device="cpu")
SAME = {
    "adam_relative": {},
    "adam_classic_normalized": dict(preset="gatys-adam", size=64, steps=12, precision="fp32", device="cpu"),
    "wasserstein": dict(style_loss="wasserstein"),
    "ema": dict(ema=0.9),
    "histogram": dict(preserve_color="histogram"),
    "luminance_one_scale": dict(preserve_color="luminance"),
    "tiles": dict(size=96, tile_size=64),
    "blend": dict(style_blend=(0.3, 0.7)),
    "noise_tv": dict(init="noise", tv_weight=0.5, style_weight=50.0),
    "avg_pool_content_layers": dict(pooling="avg", content_layers=("relu3_1", "relu4_2")),
}
CHANGED = {
    "coarse_to_fine_adam": dict(start_size=32, steps=6),
    "lbfgs": dict(preset="gatys-lbfgs", size=64, steps=10, precision="fp32", device="cpu"),
}


def render(name: str, over: dict) -> np.ndarray:
    content = sample_content(80, 60, seed=1)
    styles = [sample_style(48, 48, seed=2)]
    if name == "blend":
        styles.append(sample_style(40, 56, seed=3))
    cfg = {**BASE, **over} if "preset" not in over else over
    res = impasto.stylize(content, styles, progress=False, **cfg)
    return np.asarray(res.image, dtype=np.int16)


def main() -> int:
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", type=Path)
    g.add_argument("--compare", type=Path)
    a = p.parse_args()
    cases = {**SAME, **CHANGED}
    worst = 0
    for name, over in cases.items():
        img = render(name, over)
        if a.save:
            a.save.mkdir(parents=True, exist_ok=True)
            np.save(a.save / f"{name}.npy", img)
            print(f"{name}: saved {img.shape}")
            continue
        ref = np.load(a.compare / f"{name}.npy")
        d = np.abs(img - ref)
        kind = "must match" if name in SAME else "a fix changes it"
        print(f"{name:26s} max |Δ| {int(d.max()):3d}/255  mean {d.mean():.4f}  ({kind})")
        if name in SAME:
            worst = max(worst, int(d.max()))
    if a.compare:
        print(f"worst max |Δ| where no fix applies: {worst}/255")
        return 0 if worst <= 1 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
