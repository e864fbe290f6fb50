"""The Ray executor's cost against the local executor, and what a cluster would do with a 120-variant study.

Both executors run the same sweep (``--variants`` variants at ``--size`` px, ``--steps`` steps at one scale, one
variant per batch so that each is a task), alternating (local, ray, local, ...) so that other load on this shared
machine hits both alike. Ray gets one worker of one core; the local executor runs with one thread: the same work on
the same compute. Times are wall seconds and CPU seconds of everything that worked (the driver, and for Ray also
every process Ray started: workers, raylet, GCS), which other people's jobs disturb much less. The overhead is
(ray − local) / local, and per task. A tiny sweep (32 px, 2 steps) measures the fixed cost per task alone.

Then the sizes that travel (a 512 px picture as PNG, a stopped variant's state, the inputs), what the driver spends
filing a picture and redrawing a 120-variant report, and from those a model of 120 variants at 512 px on 1, 8 and
64 GPUs (printed; bench/README.md has the assumptions and the reading).

    python bench/ray.py [--size 256] [--steps 8] [--variants 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import impasto
from common import BENCH, OUT, machine, mm_gflops, set_threads
from impasto.api import LoadedImage, schedule
from impasto.experiments import parse_experiment
from impasto.experiments.ray_executor import RayExecutor
from impasto.experiments.ray_worker import move_state, to_wire
from impasto.io.recipe import encode_image
from impasto.samples import sample_content, sample_style

WEIGHTS = [3.0, 10.0, 30.0, 100.0, 5.0, 20.0, 50.0, 200.0]
GFLOP_512 = 379.0  # one iteration at 512 px (bench/README.md, per-iteration): forward to relu5_1 and backward
MM_FRACTION = 0.82  # impasto's fraction of the fp32 matmul rate at 512 px, measured on the CPU
GPUS = {"A100 fp32 (19.5 TFLOP/s)": 19.5e3, "H100 bf16 dense (~400 TFLOP/s usable)": 400e3}
STEP_FLOOR = 0.004  # s: a step's fixed cost on a GPU (Python, ~150 kernel launches), whatever the size
NETWORK = {"1 Gbit/s": 125e6, "10 Gbit/s": 1250e6}
PHOTO_12MP = 4000 * 3000 * 3  # bytes of a decoded 12-megapixel content image (inputs travel decoded)


def tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of ``root`` and of every live process under it, by pid (a local Ray instance's processes are
    the driver's children)."""
    tick = os.sysconf("SC_CLK_TCK")
    kids: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(d))
        cpu[int(d)] = (int(fields[11]) + int(fields[12])) / tick
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        out[pid] = cpu.get(pid, 0.0)
        todo += kids.get(pid, [])
    return out


def study(n: int, size: int, steps: int) -> Any:
    base = {"size": size, "steps": steps, "start_size": "none", "first_steps": "none", "device": "cpu"}
    return parse_experiment({"base": base, "grid": {"style_weight": WEIGHTS[:n]}})


def timed(exp: Any, out: Path, executor: RayExecutor | None) -> tuple[float, dict[str, float], Any]:
    """Wall seconds, CPU seconds by part (local: the process; Ray: the driver, the workers, Ray's own daemons)."""
    workers: set[int] = set()
    if executor is not None:
        import ray

        workers = {i["pid"] for i in ray.get([h.info.remote() for h in executor.workers.values()])}
    me = os.getpid()
    c0, t0 = tree_cpu(me), time.perf_counter()
    result = impasto.sweep(exp, content=sample_content(), styles=[sample_style()], output=out, force=True,
                           progress=False, plots=False, max_batch=1, executor=executor)
    wall = time.perf_counter() - t0
    c1 = tree_cpu(me)
    assert result.status == "done", [(v.name, v.status, v.message) for v in result.variants]
    delta = {pid: c1[pid] - c0.get(pid, 0.0) for pid in c1}
    parts = {"driver": delta.pop(me, 0.0), "workers": sum(delta.pop(p, 0.0) for p in workers)}
    parts["daemons"] = sum(delta.values()) if executor is not None else 0.0
    return wall, parts, result


def compare(exp: Any, tmp: Path, ex: RayExecutor, repeats: int, tag: str) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, dict[str, float]]]] = {"local": [], "ray": []}
    same = True
    for i in range(repeats):
        wl, cl, local = timed(exp, tmp / f"{tag}-local-{i}", None)
        wr, cr, remote = timed(exp, tmp / f"{tag}-ray-{i}", ex)
        runs["local"].append((wl, cl))
        runs["ray"].append((wr, cr))
        same &= all(a.image.tobytes() == b.image.tobytes() for a, b in zip(local.variants, remote.variants))

    def med(kind: str, part: str | None = None) -> float:
        if part is None:
            return statistics.median(w for w, _ in runs[kind])
        return statistics.median(c[part] for _, c in runs[kind])

    n = len(exp.variants)
    local_cpu = med("local", "driver")
    work = med("ray", "driver") + med("ray", "workers")  # what the sweep itself cost on Ray
    return {
        "tasks": n, "runs": runs, "same_pixels": same,
        "local_wall": med("local"), "ray_wall": med("ray"), "local_cpu": local_cpu, "ray_work_cpu": work,
        "ray_driver_cpu": med("ray", "driver"), "ray_worker_cpu": med("ray", "workers"),
        "ray_daemons_cpu": med("ray", "daemons"), "daemons_per_wall_s": med("ray", "daemons") / med("ray"),
        "overhead_wall": med("ray") / med("local") - 1, "overhead_cpu": work / local_cpu - 1,
        "per_task_wall_s": (med("ray") - med("local")) / n, "per_task_cpu_s": (work - local_cpu) / n,
    }


def sizes(tmp: Path) -> dict[str, float]:
    """Bytes that travel per variant, and the driver's filing cost, at 512 px (a 256 px run, scaled by 4 where
    stated)."""
    stop = impasto.StopToken()
    r = impasto.stylize(sample_content(), sample_style(), size=256, steps=3, start_size=None, first_steps=None,
                        device="cpu", progress=False, stop=stop, callback=lambda s: stop.stop("bench"))
    state = pickle.dumps(move_state(r.state, "cpu"))  # a stopped variant: what the driver checkpoints
    big = r.image.resize((512, 384))
    wire = to_wire(impasto.Result(big, r.config, r.history, "done", "", 1.0, r.recipe))
    inputs = pickle.dumps((LoadedImage(sample_content(1024, 768), "c"),
                           (LoadedImage(sample_style(512, 512), "s"),)))
    t = time.perf_counter()
    for _ in range(5):
        encode_image(big, "PNG", r.recipe)  # what Result.save does on the driver
    encode = (time.perf_counter() - t) / 5
    return {"png_512x384": len(wire.png), "state_256_x4": len(state) * 4, "inputs_1024": len(inputs),
            "driver_encode_512_s": encode}


def redraw(tmp: Path, n: int = 120) -> dict[str, float]:
    """The driver's redraw of a finished n-variant sweep: the sheet and report, and with the loss plots."""
    from impasto.experiments.report import publish
    from impasto.experiments.results import SweepResult, VariantResult

    exp = study(1, 512, 300)
    pic = sample_content(512, 384)
    hist = [{"step": s, "scale": 4, "time": s * 0.02, "total": 1 / s, "content": 0.5, "style": 1 / s, "tv": 0.0}
            for s in range(1, 301)]
    recs = [VariantResult(f"v{i}", exp.base, {"style_weight": i}, f"{i:016x}", f"v{i}", status="done",
                          steps_done=300, total_steps=300, elapsed=5.0, batch_size=2, history=hist, image=pic)
            for i in range(n)]
    res = SweepResult(exp, tmp / "redraw", recs, LoadedImage(pic, "c"), [LoadedImage(sample_style(), "s")])
    (tmp / "redraw" / "plots").mkdir(parents=True)
    out = {}
    for plots in (False, True):
        t = time.perf_counter()
        publish(res, plots=plots)
        out["with_plots_s" if plots else "sheet_report_s"] = time.perf_counter() - t
    return out


def model(per_task_s: float, start_s: float, sz: dict[str, float], redraw_s: float) -> list[dict[str, Any]]:
    """120 variants of impasto's default schedule at 512 px, batches of ceil(120 / GPUs) (the CLI's spread)."""
    sched_sizes, sched_steps = schedule(impasto.StyleConfig(), (512, 512))
    rows = []
    for gpu, rate in GPUS.items():
        step = [max(GFLOP_512 * (h * w) / 512**2 / (MM_FRACTION * rate), STEP_FLOOR) for h, w in sched_sizes]
        variant = sum(s * t for s, t in zip(sched_steps, step))
        for n in (1, 8, 64):
            per_batch = math.ceil(120 / n)
            tasks = math.ceil(120 / per_batch)
            rounds = math.ceil(tasks / n)
            compute = rounds * (per_batch * variant + per_task_s)
            filing = 120 * sz["driver_encode_512_s"]  # serial on the driver, overlapping the compute
            row = {"gpu": gpu, "gpus": n, "variant_s": variant, "batch": per_batch, "rounds": rounds,
                   "compute_s": compute, "start_s": start_s, "driver_filing_s": filing, "redraw_s": redraw_s}
            for net, bw in NETWORK.items():
                row[f"results_{net}_s"] = 120 * sz["png_512x384"] / bw
                row[f"inputs_{net}_s"] = n * sz["inputs_1024"] / bw  # one copy to each worker, from the driver
                row[f"inputs_12mp_{net}_s"] = n * PHOTO_12MP / bw  # a camera's photo, decoded
            # The driver files results as they come; it falls behind when filing outpaces the cluster.
            row["driver_busy"] = (filing + min(redraw_s, compute / 3)) / max(compute, 1e-9)
            row["total_s"] = start_s + max(compute, filing) + sz["driver_encode_512_s"] * per_batch
            rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    # This file is bench/ray.py: with its folder on the path, `import ray` would import it (impasto imports ray
    # only when an executor first connects).
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
    import ray

    set_threads(1)
    cal = mm_gflops()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        tiny = study(8, 32, 2)
        timed(tiny, tmp / "warm-local", None)  # VGG loaded in this process
        t = time.perf_counter()
        ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        init_s = time.perf_counter() - t
        ex = RayExecutor(workers=1, cpus_per_worker=1)  # one worker, one core: the local executor's compute
        first, _, _ = timed(tiny, tmp / "warm-ray", ex)  # the worker starts and loads VGG
        fixed = compare(tiny, tmp, ex, args.repeats, "tiny")
        main_run = compare(study(args.variants, args.size, args.steps), tmp, ex, args.repeats, "main")
        sz = sizes(tmp)
        rd = redraw(tmp)
        ex.close()
        ray.shutdown()
    start = init_s + first
    rows = model(max(fixed["per_task_wall_s"], 0.0), start, sz, rd["with_plots_s"])
    report = {"machine": machine(), "mm_gflops": cal, "ray": ray.__version__, "init_s": init_s,
              "first_sweep_s": first, "tiny": fixed, "main": main_run, "size": args.size, "steps": args.steps,
              "sizes": sz, "redraw_120": rd, "model": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "ray.json").write_text(json.dumps(report, indent=2, default=str))
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {m['loadavg'][0]:.1f}; torch.mm {cal['median']:.0f} "
          f"GFLOP/s ({cal['cpu']:.0f} per CPU-s), 1 thread; ray {ray.__version__}")
    print(f"start: ray.init {init_s:.1f} s, first sweep (a worker starts, loads VGG) {first:.1f} s")
    for name, r in (("tiny 32 px, 2 steps", fixed), (f"{args.size} px, {args.steps} steps", main_run)):
        print(f"{name}: {r['tasks']} tasks; local {r['local_wall']:.2f} s wall / {r['local_cpu']:.2f} CPU-s, ray "
              f"{r['ray_wall']:.2f} s / {r['ray_work_cpu']:.2f} CPU-s (driver {r['ray_driver_cpu']:.2f} + worker "
              f"{r['ray_worker_cpu']:.2f}; Ray's daemons {r['ray_daemons_cpu']:.2f} more, "
              f"{r['daemons_per_wall_s']:.3f} CPU-s per s) → overhead {100 * r['overhead_wall']:+.1f}% wall, "
              f"{100 * r['overhead_cpu']:+.1f}% CPU; per task {1000 * r['per_task_wall_s']:+.0f} ms wall, "
              f"{1000 * r['per_task_cpu_s']:+.0f} ms CPU; same pixels: {r['same_pixels']}")
    print(f"sizes: 512x384 PNG {sz['png_512x384'] / 1e6:.2f} MB, stopped state at 512 {sz['state_256_x4'] / 1e6:.1f}"
          f" MB, inputs (1024 px content + style) {sz['inputs_1024'] / 1e6:.1f} MB; driver encode of a 512 picture "
          f"{1000 * sz['driver_encode_512_s']:.0f} ms")
    print(f"redraw of 120 variants: sheet+report {rd['sheet_report_s']:.1f} s, with plots {rd['with_plots_s']:.1f} s")
    print("model: 120 variants at 512 px (default schedule), batches of ceil(120/GPUs)")
    for r in rows:
        print(f"  {r['gpu']:<40} {r['gpus']:>2} GPUs: variant {r['variant_s']:.1f} s, batch {r['batch']:>3}, "
              f"compute {r['compute_s']:7.1f} s + start {r['start_s']:.0f} s; results over 1 Gbit/s "
              f"{r['results_1 Gbit/s_s']:.1f} s, inputs {r['inputs_1 Gbit/s_s']:.1f} s (12 MP "
              f"{r['inputs_12mp_1 Gbit/s_s']:.1f} s); driver filing "
              f"{r['driver_filing_s']:.1f} s, busy {100 * r['driver_busy']:.0f}%; total ≈ {r['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
