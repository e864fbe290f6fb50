"""Time to quality at 400 px: how long impasto (and pastiche) need to reach the baseline's final style *and* content
distances (bench/quality.py), on golden_gate + starry_night and tubingen + the_scream.

The baseline's trace comes from bench/baseline.py (run first; ``--run-baseline`` runs it here if it is missing —
an hour or more per pair on one core). impasto runs through its public API with a callback that meters the image
every ``--every`` steps; pastiche runs as a subprocess (its CLI, its defaults, ``--size 400``), saving an image every
100 steps, and those images are metered afterwards. All at ``--threads`` (default 1, as the baseline). The time spent
metering is not counted. Times are wall seconds *and* process CPU seconds: the machine is shared, and with one thread
the CPU time is what the work itself cost; a ``torch.mm`` GFLOP/s is measured beside every run.

    python bench/time_to_quality.py                        # impasto defaults + pastiche, both pairs
    python bench/time_to_quality.py --no-pastiche --set steps=50 --set first_steps=100 --tag s50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import torch

import impasto
from common import OUT, PAIRS, Clock, machine, mm_gflops, pair_paths, set_threads, write_json
from quality import Meter, reaches


def first_reaching(records: list[dict[str, Any]], target: dict[str, float]) -> dict[str, Any] | None:
    return next((r for r in records if reaches(r, target)), None)


def baseline_trace(pair: str, run: bool) -> dict[str, Any] | None:
    path = OUT / f"baseline_{pair}_400.json"
    if not path.exists():
        if not run:
            print(
                f"{path} is missing: run python bench/baseline.py {pair} (or pass --run-baseline), then "
                "python bench/time_to_quality.py --summary",
                file=sys.stderr,
            )
            return None
        import baseline

        return baseline.run(pair)
    return json.loads(path.read_text())


def run_impasto(pair: str, every: int, overrides: dict[str, Any], tag: str) -> dict[str, Any]:
    """impasto's defaults (with ``overrides``, e.g. ``precision=fp32``) through ``impasto.stylize``. The default
    precision is ``auto``: bf16 autocast for VGG on CPUs with native bf16, Grams and losses in fp32."""
    content, style = pair_paths(pair)
    meter = Meter(content, style)  # also loads (and caches) the VGG that impasto will use
    cfg = impasto.StyleConfig(size=400, device="cpu").replace(**overrides)
    trace: dict[str, Any] = {
        "tool": "impasto",
        "pair": pair,
        "config": cfg.to_dict(),
        "overrides": overrides,
        "machine": machine(),
        "calibration_start": mm_gflops(),
        "records": [],
    }
    clock = Clock()
    last_scale = [0]

    def record(step: int, scale: int, size: tuple[int, int], image: Any) -> None:
        clock.pause()
        d = meter(image)
        trace["records"].append(
            {
                "step": step,
                "scale": scale,
                "size": list(size),
                "time": clock.now(),
                "cpu": clock.cpu(),
                "gflops": mm_gflops(seconds=0.05)["median"],
                **d,
            }
        )
        clock.resume()

    def callback(step: impasto.Step) -> None:
        # Meter every `every` steps and at the last step of each scale (the next step starts a new one).
        if step.scale != last_scale[0]:
            last_scale[0] = step.scale
        if step.step % every == 0 or step.step == step.total_steps:
            record(step.step, step.scale, step.size, step.image())
            if step.step % (10 * every) == 0:
                r = trace["records"][-1]
                print(
                    f"{tag} {pair} step {r['step']} {r['size']} cpu {r['cpu']:.0f}s style {r['style']:.4f} "
                    f"content {r['content']:.4f}",
                    flush=True,
                )

    result = impasto.stylize(content, style, cfg, callback=callback, progress=False)
    trace["total_time"], trace["total_cpu"] = clock.now(), clock.cpu()
    trace["calibration_end"] = mm_gflops()
    trace["final"] = meter(result.image)
    trace["recipe"] = {k: v for k, v in result.recipe.items() if k not in ("inputs",)}
    out = OUT / f"impasto_{tag}_{pair}_400.png"
    result.image.save(out)
    trace["image"] = str(out)
    return trace


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def run_pastiche(pair: str, steps: int | None) -> dict[str, Any]:
    content, style = pair_paths(pair)
    work = OUT / f"pastiche_{pair}"
    shutil.rmtree(work, ignore_errors=True)
    out = OUT / f"pastiche_{pair}_400.png"
    exe = shutil.which("pastiche") or "pastiche"
    cmd = [
        exe,
        "--device",
        "cpu",
        "--seed",
        "0",
        "--size",
        "400",
        "--content",
        str(content),
        "--styles",
        str(style),
        "--output",
        str(out),
        "--workspace",
        str(work),
        "--workspace-step",
        "100",
        "--info-step",
        "100",
    ]
    if steps is not None:
        cmd += ["--num-steps", str(steps)]
    trace: dict[str, Any] = {
        "tool": "pastiche",
        "pair": pair,
        "cmd": cmd[1:],
        "machine": machine(),
        "calibration_start": mm_gflops(),
        "records": [],
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ})
    assert proc.stdout is not None
    times: dict[int, tuple[float, float]] = {}
    for line in proc.stdout:
        m = re.match(r"(\d+)\s+([\d.]+)\s+", line)
        if m:  # "step elapsed loss": elapsed is pastiche's own clock, from its start (model load included)
            times[int(m.group(1))] = (float(m.group(2)), _cpu_seconds(proc.pid))
    proc.wait()
    trace["total_time"] = time.perf_counter() - t0
    trace["calibration_end"] = mm_gflops()
    if proc.returncode:
        raise SystemExit(f"pastiche failed ({proc.returncode}): {' '.join(cmd)}")
    meter = Meter(content, style)
    for step, (wall, cpu) in sorted(times.items()):
        image = next(work.glob(f"*{step:0{len(str(steps or 1000))}d}.png"), None)
        if image is not None:
            trace["records"].append({"step": step, "time": wall, "cpu": cpu, **meter(image)})
    trace["final"] = meter(out)
    trace["image"] = str(out)
    return trace


def curve(run: dict[str, Any], points: int = 8) -> list[str]:
    """A few records of a run: the last of each scale (impasto) or evenly spaced (others)."""
    recs = run["records"]
    if run["tool"] == "impasto":
        picks = [r for r, nxt in zip(recs, recs[1:] + [None]) if nxt is None or nxt["scale"] != r["scale"]]
    else:
        picks = recs[:: max(1, len(recs) // points)] + ([recs[-1]] if recs else [])
        picks = list({r["step"]: r for r in picks}.values())
    return [
        f"      step {r['step']:5d} {('x'.join(map(str, r['size'][::-1])) if 'size' in r else ''):>8s} "
        f"cpu {r['cpu']:7.0f}s wall {r['time']:7.0f}s  style {r['style']:.4f} content {r['content']:.4f}"
        for r in picks
    ]


def summarise(pair: str, base: dict[str, Any], runs: list[dict[str, Any]], show_curves: bool = False) -> list[str]:
    target = base["final"]
    b = first_reaching(base["records"], target)
    assert b is not None  # the baseline reaches its own final record
    lines = [
        (
            f"{pair}: baseline final style {target['style']:.4f} content {target['content']:.4f}; "
            f"reached at step {b['step']} in {b['time']:.0f} s wall / {b['cpu']:.0f} s CPU "
            f"(mm {base['calibration_start']['median']:.1f}→{base['calibration_end']['median']:.1f} GFLOP/s)"
        )
    ]
    for run in runs:
        name = run["tool"] + (f"[{run.get('tag')}]" if run.get("tag") else "")
        r = first_reaching(run["records"], target)
        best = min(run["records"], key=lambda x: x["style"])
        fin = run["final"]
        head = (
            f"  {name:24s} final style {fin['style']:.4f} content {fin['content']:.4f} in "
            f"{run['total_time']:.0f} s wall / {run.get('total_cpu', float('nan')):.0f} s CPU"
        )
        if r is None:
            lines.append(
                head + f"; does NOT reach the baseline (lowest style {best['style']:.4f} at content "
                f"{best['content']:.4f})"
            )
        else:
            lines.append(
                head + f"; reaches it at step {r['step']} in {r['time']:.0f} s wall / {r['cpu']:.0f} s "
                f"CPU: {b['time'] / r['time']:.1f}x faster (wall), {b['cpu'] / r['cpu']:.1f}x (CPU)"
            )
        if show_curves:
            lines += curve(run)
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=sorted(PAIRS), choices=sorted(PAIRS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--every", type=int, default=10, help="meter impasto's image every N steps")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override an impasto default")
    p.add_argument("--tag", default="defaults", help="name of this impasto variant in the output files")
    p.add_argument("--no-impasto", action="store_true")
    p.add_argument("--no-pastiche", action="store_true")
    p.add_argument("--pastiche-steps", type=int, help="cut pastiche's run (default: its own, 1000 L-BFGS steps)")
    p.add_argument("--run-baseline", action="store_true", help="run the baseline if its trace is missing")
    p.add_argument("--summary", action="store_true", help="run nothing: the table from the traces in bench/out")
    p.add_argument("--curves", action="store_true", help="print quality against time for every run")
    a = p.parse_args(argv)
    set_threads(a.threads)
    overrides = dict(kv.split("=", 1) for kv in a.set)
    report = []
    for pair in a.pairs:
        base = baseline_trace(pair, a.run_baseline and not a.summary)
        if not (a.no_impasto or a.summary):
            run = run_impasto(pair, a.every, overrides, a.tag)
            write_json(OUT / f"ttq_impasto-{a.tag}_{pair}.json", {**run, "tag": a.tag})
        if not (a.no_pastiche or a.summary):
            write_json(OUT / f"ttq_pastiche_{pair}.json", run_pastiche(pair, a.pastiche_steps))
        # This run and the earlier ones of other variants (each run writes its own file), for one table.
        runs = [json.loads(f.read_text()) for f in sorted(OUT.glob(f"ttq_*_{pair}.json"))]
        if base is not None:
            report += summarise(pair, base, runs, a.curves)
    print(f"threads {torch.get_num_threads()}, mm now {mm_gflops()['median']:.1f} GFLOP/s; {machine()['cpu']}")
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
