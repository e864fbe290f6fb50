"""The default run's cost at 512 px against impasto's previous defaults and jcjohnson's recipe (the gatys-lbfgs
preset), measured in the same sitting, one child process at a time (nothing else running beside them).

    python bench/defaults.py --content ../shared/images/golden_gate.jpg --style ../shared/images/starry_night.jpg

Each run is ``impasto.stylize`` in a fresh process; CPU seconds are the process's own (all threads), wall seconds
the call's. gatys-lbfgs is run for ``--lbfgs-steps`` iterations and its cost scaled to its 1000 (an L-BFGS
iteration costs the same throughout: one evaluation, history 100), said so in the output. Ratios are against the
old defaults and against 1000 L-BFGS iterations. The quality meter (impasto.api.Meter) measures every picture.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from gallery import OLD_DEFAULTS as OLD  # impasto 451dd0f's defaults, every field (one pinned copy for both scripts)

OUT = Path(__file__).resolve().parent / "out" / "defaults"
RUNS = {"old defaults": ("default", OLD), "new defaults": ("default", {}), "preview": ("preview", {}),
        "quality": ("quality", {}), "gatys-lbfgs": ("gatys-lbfgs", {})}


def child(spec: dict) -> None:
    import torch

    import impasto

    cfg = impasto.preset(spec["preset"], **spec["overrides"])
    c0, t0 = time.process_time(), time.perf_counter()
    result = impasto.stylize(spec["content"], spec["style"], cfg, progress=False)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    result.image.save(spec["out"])
    print(json.dumps({"cpu": cpu, "wall": wall, "steps": len(result.history), "threads": torch.get_num_threads()}))


def run(spec: dict, a: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--content", a.content, "--style", a.style, "--child", json.dumps(spec)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", required=True)
    p.add_argument("--style", required=True)
    p.add_argument("--lbfgs-steps", type=int, nargs=2, default=[10, 40], metavar=("N1", "N2"))
    p.add_argument("--only", nargs="+", choices=list(RUNS))
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        child(json.loads(a.child))
        return 0
    from impasto.api import Meter

    OUT.mkdir(parents=True, exist_ok=True)
    meter = Meter(a.content, a.style)
    rows = {}
    for name in a.only or list(RUNS):
        preset, over = RUNS[name]
        over = dict(over)
        out = OUT / f"{name.replace(' ', '_')}.png"
        spec = {"preset": preset, "overrides": over, "content": a.content, "style": a.style, "out": str(out)}
        if preset == "gatys-lbfgs":
            (n1, r1), (n2, r2) = ((n, run({**spec, "overrides": {**over, "steps": n}}, a)) for n in a.lbfgs_steps)
            per = {k: (r2[k] - r1[k]) / (n2 - n1) for k in ("cpu", "wall")}
            r = {k: r1[k] - n1 * per[k] + 1000 * per[k] for k in ("cpu", "wall")}
            r.update(steps=1000, measured=f"{n1} and {n2} iterations: {per['cpu']:.2f} CPU-s an iteration")
        else:
            r = run(spec, a)
            r.update(meter(out).as_dict())
        rows[name] = r
        print(f"{name:14s} cpu {r['cpu']:7.1f} s  wall {r['wall']:6.1f} s  steps {r['steps']}"
              + ("" if preset == "gatys-lbfgs" else f"  style {r['style']:.3f} style14 {r['style14']:.3f}"
                 f" content {r['content']:.3f} colour {r['colour']:.1f}"), flush=True)
    base, lbfgs = rows.get("old defaults"), rows.get("gatys-lbfgs")
    for name, r in rows.items():
        parts = []
        if base:
            parts.append(f"{base['cpu'] / r['cpu']:.2f}x less CPU than the old defaults ({base['wall'] / r['wall']:.2f}x wall)")
        if lbfgs:
            parts.append(f"{lbfgs['cpu'] / r['cpu']:.1f}x less CPU than 1000 L-BFGS iterations")
        print(f"{name:14s} " + "; ".join(parts))
    if lbfgs:
        print(f"(gatys-lbfgs: 1000 iterations = setup + 1000 x the slope measured over {lbfgs['measured']})")
    (OUT / "figures.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
