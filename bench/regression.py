"""Per-iteration speed of this checkout's engine against an older checkout's, measured in the same run, and whether
the two make the same pixels.

Each measurement is a child process that imports impasto from one source tree (``PYTHONPATH=<tree>`` first, so it
wins over the editable install; the child checks ``impasto.__file__``), loads golden_gate + starry_night from
../shared/images (PIL, long side = the size, Lanczos, as the api resizes: 512 px → 512×384 and a 512×320 style),
then runs the real loop, ``core.optimize.optimize``, with the default config at one scale (``start_size=None``)
for ``--warm`` + ``-n`` steps. The time of a step is the process-CPU (and wall) time between two of the loop's
callbacks; the first ``--warm`` steps (targets, allocator) are not counted. ``--precisions``: ``fp32``, and the
default ``auto`` as a real run resolves it (each tree's ``api.resolve_precision``: bf16 on CPUs with native bf16).

The children alternate old/new, ABBA (old,new then new,old, ...) for ``--rounds`` rounds per size and precision, so
that a drift in the machine's speed falls on both. Printed: each engine's median CPU-s per step (min-max over the
children's medians), new/old per round (the median and min-max of the rounds' ratios), and max |Δ| between the old
and new final images (the same seed and settings should give the same pixels; ``/255`` after 8-bit rounding), with a
``torch.mm`` calibration measured in every child.

    python bench/regression.py --old /tmp/old/src [--new src] [--sizes 256 512] [--precisions fp32 auto]
                               [--rounds 3] [-n 3] [--warm 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PAIR = "golden_gate+starry_night"


# -- the child: one engine, one size, one precision ---------------------------------------------------------------
def load_pair(pair: str, size: int) -> tuple[Any, Any]:
    """Content and style at long side ``size`` (Lanczos, aspect kept), (1, 3, H, W) fp32 in [0, 1]; no impasto code."""
    import numpy as np
    import torch
    from PIL import Image

    from common import pair_paths

    out = []
    for path in pair_paths(pair):
        with Image.open(path) as im:
            im = im.convert("RGB")
            s = size / max(im.size)
            im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
            out.append(torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].contiguous())
    return out[0], out[1]


def child(a: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import impasto
    import impasto.core.optimize as core_optimize
    from common import mm_gflops, source_hash
    from impasto.api import resolve_precision
    from impasto.weights import load_vgg

    tree = Path(a.tree).resolve()
    for mod in (impasto, core_optimize):
        if not Path(mod.__file__).resolve().is_relative_to(tree):
            raise SystemExit(f"{mod.__name__} came from {mod.__file__}, not from {tree}: check PYTHONPATH")
    content, style = load_pair(PAIR, a.size)
    cfg = impasto.StyleConfig(size=a.size, start_size=None, steps=a.warm + a.n, device="cpu", precision=a.precision)
    precision = resolve_precision(cfg.precision, torch.device("cpu"))
    model = load_vgg("bundled")
    stamps: list[tuple[float, float]] = []
    t0 = (time.perf_counter(), time.process_time())
    state = core_optimize.optimize(model, content, [style], [cfg], precision=precision,
                                   callback=lambda s: stamps.append((time.perf_counter(), time.process_time())))
    steps = list(zip(stamps[a.warm - 1:], stamps[a.warm:]))
    np.save(a.image, state.images[0].detach().float().cpu().numpy())
    return {
        "impasto": impasto.__file__,
        "source": source_hash(impasto.__file__),
        "size": list(content.shape[-2:]),
        "precision": a.precision,
        "resolved": precision,
        "status": state.status,
        "cpu": [b[1] - x[1] for x, b in steps],
        "wall": [b[0] - x[0] for x, b in steps],
        "first_cpu": stamps[a.warm - 1][1] - t0[1],  # targets, the first steps, allocator warm-up
        "mm": mm_gflops(seconds=0.3),
    }


# -- the parent ---------------------------------------------------------------------------------------------------
def tree_info(tree: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tree, capture_output=True, text=True, check=False).stdout.strip()

    return {"path": str(tree), "commit": git("rev-parse", "--short", "HEAD"),
            "dirty": git("status", "--porcelain", "--", ".").splitlines()}


def run_child(tree: Path, size: int, precision: str, a: argparse.Namespace, image: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", "--tree", str(tree), "--size", str(size), "--precision", precision,
           "-n", str(a.n), "--warm", str(a.warm), "--image", str(image)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})"


def measure(size: int, precision: str, trees: dict[str, Path], a: argparse.Namespace, tmp: Path,
            rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``--rounds`` ABBA rounds of old and new children at one size and precision → the summary of that cell."""
    import numpy as np

    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    images: dict[str, list[Any]] = {"old": [], "new": []}
    for r in range(a.rounds):
        for engine in ("old", "new") if r % 2 == 0 else ("new", "old"):
            image = tmp / f"{engine}_{size}_{precision}_{r}.npy"
            res = run_child(trees[engine], size, precision, a, image)
            res.update(engine=engine, round=r, median_cpu=statistics.median(res["cpu"]),
                       median_wall=statistics.median(res["wall"]))
            runs[engine].append(res)
            images[engine].append(np.load(image))
            rows.append(res)
            print(f"  {size:4d}px {precision:4s}→{res['resolved']:4s} round {r} {engine}: "
                  f"{res['median_cpu']:.3f} CPU-s/step ({', '.join(f'{c:.3f}' for c in res['cpu'])}), "
                  f"wall {res['median_wall']:.3f}, mm {res['mm']['cpu']:.1f} GFLOP/CPU-s", flush=True)
    old0, new0 = images["old"][0], images["new"][0]
    s = {
        "size": size, "shape": runs["old"][0]["size"], "precision": precision,
        "resolved": {k: v[0]["resolved"] for k, v in runs.items()},
        "old_cpu": [x["median_cpu"] for x in runs["old"]],
        "new_cpu": [x["median_cpu"] for x in runs["new"]],
        "ratio_cpu": [n["median_cpu"] / o["median_cpu"] for o, n in zip(runs["old"], runs["new"])],
        "ratio_wall": [n["median_wall"] / o["median_wall"] for o, n in zip(runs["old"], runs["new"])],
        "max_abs_delta": float(np.abs(new0 - old0).max()),
        "max_abs_delta_8bit": int(np.abs(np.round(new0 * 255) - np.round(old0 * 255)).max()),
        "max_abs_delta_repeats": max(float(np.abs(x - ims[0]).max()) for ims in images.values() for x in ims),
        "mm_cpu": [x["mm"]["cpu"] for x in runs["old"] + runs["new"]],
        "sources": {k: sorted({x["source"] for x in v}) for k, v in runs.items()},
    }
    print(f"{size}px {precision}: new/old CPU {spread(s['ratio_cpu'])}, wall {spread(s['ratio_wall'])}; "
          f"old {spread(s['old_cpu'])} new {spread(s['new_cpu'])} CPU-s/step; max |Δ| old vs new "
          f"{s['max_abs_delta']:.3g} ({s['max_abs_delta_8bit']}/255), between repeats {s['max_abs_delta_repeats']:.3g}",
          flush=True)
    return s


def table(summary: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'size':>9s} {'precision':>10s} {'old CPU-s/step':>20s} {'new CPU-s/step':>20s} "
             f"{'new/old (CPU)':>20s} {'new/old (wall)':>20s} {'max |Δ|':>9s} {'mm GFLOP/CPU-s':>15s}"]
    for s in summary:
        shape = "x".join(map(str, s["shape"][::-1]))
        prec = s["precision"] + (f"→{s['resolved']['new']}" if s["precision"] == "auto" else "")
        lines.append(f"{shape:>9s} {prec:>10s} {spread(s['old_cpu']):>20s} {spread(s['new_cpu']):>20s} "
                     f"{spread(s['ratio_cpu']):>20s} {spread(s['ratio_wall']):>20s} {s['max_abs_delta_8bit']:>5d}/255 "
                     f"{min(s['mm_cpu']):6.1f}-{max(s['mm_cpu']):5.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, help="the older checkout's source tree (the folder that holds impasto/)")
    p.add_argument("--new", type=Path, default=BENCH.parent / "src", help="default: this checkout's src")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--precisions", nargs="+", default=["fp32", "auto"])
    p.add_argument("--rounds", type=int, default=3, help="old/new pairs of children per size and precision")
    p.add_argument("-n", type=int, default=3, help="timed steps per child")
    p.add_argument("--warm", type=int, default=1, help="untimed steps first")
    p.add_argument("--tag", default="", help="suffix of bench/out/regression{TAG}.json")
    # the child's own arguments
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tree", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--precision", help=argparse.SUPPRESS)
    p.add_argument("--image", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a)))
        return 0
    if a.old is None:
        p.error("--old is required")
    from common import OUT, machine, write_json

    trees = {"old": a.old.resolve(), "new": a.new.resolve()}
    info = {k: tree_info(t) for k, t in trees.items()}
    for k, v in info.items():
        print(f"{k}: {v['path']} at {v['commit']}" + (f" ({len(v['dirty'])} uncommitted changes)" if v["dirty"] else ""))
    rows: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = [measure(size, precision, trees, a, Path(tmp), rows) for size in a.sizes for precision in a.precisions]
    m = machine()
    for engine in trees:
        hashes = sorted({r["source"] for r in rows if r["engine"] == engine})
        print(f"{engine}'s sources (hash of impasto/**/*.py): {', '.join(hashes)}"
              + (" — CHANGED during the run" if len(hashes) > 1 else ""))
    print(f"\n{m['cpu']}, {m['cores']} cores, torch {m['torch']}, 1 thread per child, load {m['loadavg'][0]:.1f}; "
          f"{a.rounds} rounds × (old, new), {a.warm} + {a.n} steps each; {time.perf_counter() - t_start:.0f} s")
    print("\n".join(table(summary)))
    write_json(OUT / f"regression{a.tag}.json", {"machine": m, "trees": info, "args": {k: str(v) for k, v in vars(a).items()},
                                                 "rows": rows, "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
