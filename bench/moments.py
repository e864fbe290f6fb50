"""Adam's moments at a scale change: does the new engine's ``rescale_moments`` (core/pixels.py) reach the old
engine's quality in fewer steps?

For each pair, the default config at ``--size`` 256 (coarse to fine 128 → 181 → 256, 200 + 100 + 100 Adam steps),
``precision = "fp32"`` for both so that only the engine differs, runs through ``impasto.stylize`` in a child
process per engine: ``old`` imports impasto from ``--old`` (``PYTHONPATH`` first; the child checks
``impasto.__file__``), ``new`` from this checkout's src (``--new``), and ``new-norescale`` (a control, not run by
default) is the new engine with ``rescale_moments`` replaced by a no-op. A callback saves the current image
(``step.image()``) every ``--every`` steps and at each scale's last step, to bench/out/moments/; in the new engine's
child, ``impasto.core.optimize.rescale_moments`` is wrapped to record the factors s it applies (s = rms(g)/rms(v̂):
the first moment × s, the second × s²) at each scale change. Afterwards the parent meters every saved image with
bench/quality.py's ``Meter`` (style and content distances at 400 px; the same meter for both engines).

Printed per pair: each engine's final distances, its distances at the end of each scale, the first step at which
the new engine reaches the old engine's final figures on both distances (and the old the new's), the factors s,
and max |Δ| between the two engines' images at the same step (equal before the first scale change means the inputs
and the first scale agree, so what differs after it is the carry).

    python bench/moments.py --old /tmp/old/src [--pairs ...] [--size 256] [--every 10] [--engines old new]
                            [--set FIELD=VALUE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ENGINES = ("old", "new", "new-norescale")


# -- the child: one engine, one pair ------------------------------------------------------------------------------
def child(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    import impasto
    from common import Clock, pair_paths, source_hash

    tree = Path(a.tree).resolve()
    if not Path(impasto.__file__).resolve().is_relative_to(tree):
        raise SystemExit(f"impasto came from {impasto.__file__}, not from {tree}: check PYTHONPATH")
    factors: list[dict[str, Any]] = []
    clock = Clock()
    at = {"step": 0, "scale": 0}
    if a.engine != "old":
        import impasto.core.optimize as core_optimize

        real = core_optimize.rescale_moments

        def record(opt: Any, params: Any) -> list[float]:
            s = real(opt, params) if a.engine == "new" else [1.0 for _ in params]
            factors.append({"before_step": at["step"] + 1, "scale": at["scale"] + 1, "s": s})
            return s

        core_optimize.rescale_moments = record
    out = Path(a.outdir)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    last_of_scale: dict[int, int] = {}

    def callback(step: Any) -> None:
        at["step"], at["scale"] = step.step, step.scale
        last_of_scale[step.scale] = step.step
        end_of_scale = step.step in a.scale_ends
        if step.step % a.every and not end_of_scale and step.step != step.total_steps:
            return
        clock.pause()
        path = out / f"step{step.step:04d}.png"
        step.image().save(path)
        records.append({"step": step.step, "scale": step.scale, "size": list(step.size), "cpu": clock.cpu(),
                        "time": clock.now(), "losses": dict(step.losses), "image": str(path)})
        clock.resume()

    content, style = pair_paths(a.pair)
    cfg = impasto.StyleConfig(size=a.size, precision="fp32", device="cpu").replace(**overrides(a))
    result = impasto.stylize(str(content), str(style), cfg, callback=callback, progress=False)
    return {"engine": a.engine, "pair": a.pair, "impasto": impasto.__file__,
            "source": source_hash(impasto.__file__), "status": result.status,
            "config": cfg.to_dict(), "records": records, "factors": factors, "last_of_scale": last_of_scale,
            "cpu": clock.cpu(), "time": clock.now()}


# -- the parent ---------------------------------------------------------------------------------------------------
def overrides(a: argparse.Namespace) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in a.set)


def scale_ends(a: argparse.Namespace) -> list[int]:
    """The last step of each scale of the schedule at ``--size`` (a square's: the steps do not depend on the aspect
    ratio)."""
    import impasto
    from impasto.core.optimize import plan

    _, steps = plan(impasto.StyleConfig(size=a.size).replace(**overrides(a)), (a.size, a.size))
    return [sum(steps[: i + 1]) for i in range(len(steps))]


def run_child(engine: str, tree: Path, pair: str, a: argparse.Namespace, ends: list[int]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1"}
    outdir = BENCH / "out" / "moments" / f"{engine}_{pair}_{a.size}{a.tag}"
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--tree", str(tree), "--pair", pair,
           "--size", str(a.size), "--every", str(a.every), "--outdir", str(outdir),
           *(x for kv in a.set for x in ("--set", kv)), "--scale-ends", *map(str, ends)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def first_reaching(records: list[dict[str, Any]], target: dict[str, float]) -> dict[str, Any] | None:
    from quality import reaches

    return next((r for r in records if reaches(r, target)), None)


def pixel_deltas(base: dict[str, Any], run: dict[str, Any]) -> list[tuple[int, int]]:
    """(step, max |Δ| /255) between the two runs' saved images at the steps both saved."""
    import numpy as np
    from PIL import Image

    by_step = {rec["step"]: rec["image"] for rec in base["records"]}
    out = []
    for rec in run["records"]:
        if rec["step"] in by_step:
            x = np.asarray(Image.open(rec["image"]), dtype=np.int16)
            y = np.asarray(Image.open(by_step[rec["step"]]), dtype=np.int16)
            out.append((rec["step"], int(np.abs(x - y).max())))
    return out


def first_below(records: list[dict[str, Any]], key: str, value: float, scale: int | None = None) -> str:
    """The first saved step at or below ``value`` on one measure (``scale``: only that scale's steps)."""
    r = next((r for r in records if r[key] <= value and (scale is None or r["scale"] == scale)), None)
    return f"step {r['step']}" if r else "never"


def compare(base: dict[str, Any], engine: str, run: dict[str, Any]) -> list[str]:
    hit = first_reaching(run["records"], base["records"][-1])
    back = first_reaching(base["records"], run["records"][-1])
    show = lambda r: f"step {r['step']} ({r['style']:.4f} / {r['content']:.4f})" if r else "never"
    deltas = pixel_deltas(base, run)
    same = sum(1 for _, d in deltas if d == 0)
    first = next(((s, d) for s, d in deltas if d), None)
    fo, fn = base["records"][-1], run["records"][-1]
    last = fo["scale"]
    for r in (*base["records"], *run["records"]):
        r.setdefault("total", r["losses"]["total"])
    one = lambda key: (f"{key}: {engine} reaches old's final {fo[key]:.4g} at "
                       f"{first_below(run['records'], key, fo[key], last)}, old reaches {engine}'s {fn[key]:.4g} at "
                       f"{first_below(base['records'], key, fn[key], last)}")
    return [f"  {engine} first reaches old's final (both distances): {show(hit)}; old first reaches {engine}'s "
            f"final: {show(back)}",
            f"  one measure at a time (last scale): {one('style')}; {one('content')}",
            f"  the engine's own loss (last scale): {engine} reaches old's final {fo['total']:.4g} at "
            f"{first_below(run['records'], 'total', fo['total'], last)}, old reaches {engine}'s {fn['total']:.4g} "
            f"at {first_below(base['records'], 'total', fn['total'], last)}",
            f"  {engine} vs old pixels: identical at {same} of {len(deltas)} saved steps"
            + (f", first differing at step {first[0]} ({first[1]}/255), {deltas[-1][1]}/255 at the end" if first
               else "")]


def describe(pair: str, runs: dict[str, dict[str, Any]], ends: list[int], size: int) -> list[str]:
    lines = [f"{pair} ({size} px, scales end at steps {', '.join(map(str, ends))}):"]
    for engine, r in runs.items():
        fin = r["records"][-1]
        per_scale = "; ".join(f"step {rec['step']} {rec['style']:.4f} / {rec['content']:.4f}"
                              for rec in r["records"] if rec["step"] in ends)
        lines.append(f"  {engine:14s} final style {fin['style']:.4f} content {fin['content']:.4f}  "
                     f"(scale ends: {per_scale})")
        if r["factors"]:
            lines.append(" " * 17 + "rescale factors s: " + ", ".join(
                f"before step {f['before_step']} (scale {f['scale']}): {f['s'][0]:.4f}" for f in r["factors"]))
    if "old" in runs:
        for engine, r in runs.items():
            if engine != "old":
                lines += compare(runs["old"], engine, r)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, help="the older checkout's source tree (the folder that holds impasto/)")
    p.add_argument("--new", type=Path, default=BENCH.parent / "src", help="default: this checkout's src")
    p.add_argument("--pairs", nargs="+", default=["golden_gate+starry_night", "tubingen+the_scream"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--engines", nargs="+", default=["old", "new"], choices=ENGINES)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a default for both engines (e.g. start_size=32 for a quick check)")
    p.add_argument("--tag", default="", help="suffix of bench/out/moments{TAG}.json")
    p.add_argument("--from-json", type=Path, help="run nothing: the report from an earlier run's JSON")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    p.add_argument("--tree", help=argparse.SUPPRESS)
    p.add_argument("--pair", help=argparse.SUPPRESS)
    p.add_argument("--outdir", help=argparse.SUPPRESS)
    p.add_argument("--scale-ends", type=int, nargs="*", default=[], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a)))
        return 0
    if a.from_json:
        d = json.loads(a.from_json.read_text())
        size = int(d["args"]["size"])
        print("\n".join(line for pair, r in d["runs"].items() for line in describe(pair, r, d["scale_ends"], size)))
        return 0
    if a.old is None and "old" in a.engines:
        p.error("--old is required to run the old engine")
    import torch

    from common import OUT, machine, pair_paths, set_threads, write_json
    from quality import Meter

    set_threads(1)
    trees = {"old": a.old.resolve() if a.old else None, "new": a.new.resolve(), "new-norescale": a.new.resolve()}
    ends = scale_ends(a)
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    lines: list[str] = []
    t0 = time.perf_counter()
    for pair in a.pairs:
        runs[pair] = {}
        for engine in a.engines:
            r = run_child(engine, trees[engine], pair, a, ends)  # type: ignore[arg-type]
            print(f"{pair} {engine} (impasto {r['impasto']}, sources {r['source']}): {r['status']}, "
                  f"{r['cpu']:.0f} CPU-s ({r['time']:.0f} s wall) for {r['records'][-1]['step']} steps", flush=True)
            runs[pair][engine] = r
        meter = Meter(*pair_paths(pair))
        with torch.no_grad():
            for r in runs[pair].values():
                for rec in r["records"]:
                    rec.update({k: v for k, v in meter(rec["image"]).items() if k in ("style", "content")})
        lines += describe(pair, runs[pair], ends, a.size)
        print("\n".join(describe(pair, runs[pair], ends, a.size)), flush=True)
    m = machine()
    print(f"\n{m['cpu']}, torch {m['torch']}, 1 thread per child; {time.perf_counter() - t0:.0f} s in all\n")
    print("\n".join(lines))
    write_json(OUT / f"moments{a.tag}.json",
               {"machine": m, "args": {k: str(v) for k, v in vars(a).items()}, "scale_ends": ends, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
