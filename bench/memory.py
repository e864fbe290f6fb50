"""Peak memory (RSS) of impasto runs at 512, 1024, 2048 and 4096 px, one subprocess per size, against
``impasto.core.memory.estimate_bytes``.

Each child runs impasto's defaults at a single scale of that size (``start_size=None``: the final scale is the
largest, so it sets the peak) for ``--steps`` iterations on a square image, then reports ``ru_maxrss`` (the
process's peak resident set, which includes Python, torch and the weights). The child's baseline RSS before any
image work (after importing torch and loading the weights) is reported too, so the run's own part can be read off.
A size is not run when its predicted peak exceeds the memory available (``--limit``, default 90% of MemAvailable):
the prediction scales the run part measured at the previous size by the pixel count (core's estimate when nothing
was measured yet); the prediction is printed instead. ``--steps 0`` measures only the targets. The api's own memory check is bypassed (the
engine is called directly) so that a refused size can still be measured when it fits.

    python bench/memory.py [--sizes 512 1024 2048 4096] [--steps 2] [--threads 1] [--set precision=fp32]
    python bench/memory.py --sizes 4096 --steps 1 --set tile_size=1024 --tag _tiles
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from common import OUT, machine, mm_gflops, set_threads, write_json

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def child(size: int, steps: int, overrides: dict[str, str]) -> dict:
    import torch

    import impasto
    from impasto.api import resolve_precision
    from impasto.core.optimize import optimize
    from impasto.weights import load_vgg

    model = load_vgg("bundled")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, size, size, generator=g)
    cfg = impasto.StyleConfig(size=size, start_size=None, steps=max(steps, 1), device="cpu").replace(**overrides)
    times: list[float] = []
    t0 = time.perf_counter()
    c0 = time.process_time()
    precision = resolve_precision(cfg.precision, torch.device("cpu"))  # as a real run would (auto: bf16 here)
    if steps:
        optimize(model, content, [style], [cfg], callback=lambda s: times.append(time.perf_counter()),
                 precision=precision)
    else:
        from impasto.core.objective import Objective

        Objective(model, content, [style], [cfg], precision=precision)  # tiles from cfg.tile_size
    return {
        "size": size,
        "steps": steps,
        "config": {k: str(getattr(cfg, k)) for k in ("tile_size", "checkpoint")},
        "precision": precision,
        "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "base": base,
        "wall": time.perf_counter() - t0,
        "cpu": time.process_time() - c0,
        "mm": mm_gflops(seconds=0.2),
    }


def available() -> int:
    with open("/proc/meminfo") as f:
        return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemAvailable:"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=float, help="GiB a child may use (default: 90%% of MemAvailable now)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a config field for the runs, e.g. checkpoint=true or tile_size=1024",
    )
    p.add_argument("--tag", default="", help="suffix of the output file bench/out/memory{TAG}.json")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    set_threads(a.threads)
    overrides = dict(kv.split("=", 1) for kv in a.set)
    if a.child:
        print(json.dumps(child(a.child, a.steps, overrides)))
        return 0
    import impasto
    from impasto.core.memory import estimate_bytes

    cfg = impasto.StyleConfig().replace(**overrides)
    est_kw = {"tile": cfg.tile_size, "checkpoint": cfg.checkpoint}

    rows: list[dict] = []
    gib = 2**30
    print(f"{'size':>5s} {'estimate':>9s} {'peak RSS':>9s} {'run part':>9s} {'peak/est':>8s} {'cpu s':>7s}  mm GFLOP/s")
    for size in a.sizes:
        est = estimate_bytes(size, size, LAYERS, **est_kw)
        limit = a.limit * gib if a.limit else 0.9 * available()
        done = [r for r in rows if "peak" in r]
        if done:  # activations scale with the pixel count
            prev = done[-1]
            predicted = prev["base"] + (prev["peak"] - prev["base"]) * (size / prev["size"]) ** 2
        else:
            predicted = est
        row: dict = {"size": size, "estimate": est, "predicted": predicted, "limit": limit}
        if predicted > limit:
            row["skipped"] = f"predicted {predicted / gib:.1f} GiB > limit {limit / gib:.1f} GiB"
            print(f"{size:5d} {est / gib:8.2f}G {'-':>9s} {'-':>9s} {'-':>8s} {'-':>7s}  not run: {row['skipped']}")
        else:
            cmd = [sys.executable, __file__, "--child", str(size), "--steps", str(a.steps), "--threads", str(a.threads),
                   *(arg for kv in a.set for arg in ("--set", kv))]
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if proc.returncode:
                row["error"] = f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
                print(f"{size:5d} {est / gib:8.2f}G  failed: {row['error']}")
            else:
                row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
                run = row["peak"] - row["base"]
                print(
                    f"{size:5d} {est / gib:8.2f}G {row['peak'] / gib:8.2f}G {run / gib:8.2f}G "
                    f"{row['peak'] / est:8.2f} {row['cpu']:7.0f}  {row['mm']['cpu']:.1f} (cpu) "
                    f"{row['mm']['median']:.1f} (wall)",
                    flush=True,
                )
        rows.append(row)
    write_json(
        OUT / f"memory{a.tag}.json",
        {"machine": machine(), "steps": a.steps, "layers": LAYERS, "overrides": overrides, "rows": rows},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
