"""The neighbour loss's cost against the Gram defaults', in one sitting: CPU seconds, wall seconds, peak memory.

Each run is a child process of its own, one at a time (nothing else should run beside it), on the same pair at the
same size, with the same schedule: impasto's Gram defaults, then the ``neighbour`` preset. Printed: each run's CPU
and wall seconds, its peak RSS, the time its neighbour searches took (``prepare``), and the ratios neighbour / Gram,
with the ``torch.mm`` calibration and the host's CPU flags beside them. ``--tiles``: also the neighbour preset at
2048 px with 1024 px tiles, a few steps at the final scale only (that it works, its peak memory, its search time).
The pictures go to bench/out/neighbour/ (look at them: the Gram and neighbour runs side by side).

    python bench/neighbour.py                                       # 512 px, fjord + antimonocromatismo
    python bench/neighbour.py --content C.jpg --style S.jpg --size 512 --tiles
    python bench/neighbour.py --size 256 --set steps=10             # a quick look
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import OUT, machine, mm_gflops, write_json
from pairs import INPUTS


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return "?"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return " ".join(f for f in wanted if f in flags) or "none of avx2/avx512"


def child(content: str, style: str, overrides: dict, output: str | None = None) -> dict:
    import torch

    import impasto
    from impasto.core import neighbour_term

    searches: list[float] = []
    real = neighbour_term.NeighbourTerm.prepare

    def timed(self, images):  # type: ignore[no-untyped-def]
        t = time.process_time()
        real(self, images)
        searches.append(time.process_time() - t)

    neighbour_term.NeighbourTerm.prepare = timed  # type: ignore[method-assign]
    t0, c0 = time.perf_counter(), time.process_time()
    result = impasto.stylize(content, style, progress=False, **overrides)
    if output:
        result.save(output)
    return {"cpu": time.process_time() - c0, "wall": time.perf_counter() - t0, "searches": len(searches),
            "search_cpu": sum(searches), "steps": len(result.history),
            "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "precision": result.recipe.get("precision"), "threads": torch.get_num_threads(), "losses": result.losses}


def run_child(content: str, style: str, overrides: dict, output: str | None) -> dict:
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); from neighbour import child; "
            f"print('RESULT', json.dumps(child({content!r}, {style!r}, {overrides!r}, {output!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(line[7:])


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--content", default=str(INPUTS / "nnst" / "C7.png"), help="default: fjord (bench/pairs.py)")
    ap.add_argument("--style", default=str(INPUTS / "adain" / "antimonocromatismo.jpg"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--set", nargs="*", default=[], help="extra settings for both runs, e.g. steps=10")
    ap.add_argument("--tiles", action="store_true", help="also 2048 px with 1024 px tiles (a few final-scale steps)")
    args = ap.parse_args()
    extra = parse_set(args.set)
    calib = mm_gflops()
    print(f"host: {machine()['cpu']}, flags: {cpu_flags()}; torch.mm {calib['median']:.0f} GFLOP/s wall, "
          f"{calib['cpu']:.0f} per CPU-s, {calib['threads']} threads")
    runs = {"gram": {"size": args.size, **extra}, "neighbour": {"preset": "neighbour", "size": args.size, **extra}}
    if args.tiles:
        runs["neighbour-2048-tiles"] = {"preset": "neighbour", "size": 2048, "tile_size": 1024, "start_size": None,
                                        "steps": 2, **extra}
    results = {}
    for name, overrides in runs.items():
        out = OUT / "neighbour" / f"{Path(args.content).stem}+{Path(args.style).stem}-{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        r = run_child(args.content, args.style, overrides, str(out))
        results[name] = {**r, "overrides": overrides}
        print(f"{name:22s} {r['cpu']:8.1f} CPU-s {r['wall']:8.1f} wall-s  peak {r['peak'] / 2**30:5.2f} GiB  "
              f"{r['steps']} steps  searches {r['searches']} ({r['search_cpu']:.1f} CPU-s)", flush=True)
    g, n = results["gram"], results["neighbour"]
    print(f"neighbour / gram at {args.size} px: CPU {n['cpu'] / g['cpu']:.2f}x, wall {n['wall'] / g['wall']:.2f}x, "
          f"peak memory {n['peak'] / g['peak']:.2f}x; searches {n['search_cpu'] / n['cpu']:.1%} of the neighbour "
          f"run's CPU")
    path = write_json(OUT / "neighbour.json", {"machine": machine(), "flags": cpu_flags(), "mm": calib,
                                                 "args": vars(args), "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
