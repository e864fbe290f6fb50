"""Masks (guided Gram matrices): the cost of a masked step, and how well each region takes its own style.

    python bench/masks.py                    # both parts: timing at 512 px, then the quality runs at 400 px
    python bench/masks.py --part timing      # only the step ratio
    python bench/masks.py --part quality --size 192 --steps 30   # a quick look

Timing: one step (VGG forward to relu5_1, the terms, backward) of golden_gate with starry_night and the_scream at
512 px: unmasked (one region, the two styles blended), masked with two regions (sky/rest and left/right; the inside
and the simple rule), interleaved, median process-CPU seconds (1 thread); plus the one-off cost of the guides at that scale.

Quality: impasto's defaults at ``--size`` (400: quality.py's EVAL_SIZE), two styles on golden_gate split sky/rest
(the sky above the horizon, less the near tower, made from the photo's rows and colours) and left/right, each with
the inside and the simple rule; each style alone; the sky/rest split with a kept ellipse (``keep_mask``). Per
region: the style distance (quality.py's meter over the region: mean over relu1_1…relu5_1 of ‖G_r(out) − G(style)‖ /
‖G(style)‖, G_r the Gram over the region's positions, the region eroded by MARGIN px so the feathered border is left
out) against each style, and the colour distance (W2 between Gaussians fitted to the region's and the style's RGB);
the targets: the other style ≥ 2× farther than its own, and its own within 15% of the single-style run's in that
region. Also each region's STRIP px along its border, at the shallow layers: bleed from the other style, or a band
the rule leaves unpainted. Pictures: bench/out/masks/ (never committed: they are made from ../shared).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

import impasto
from common import IMAGES, OUT, machine, mm_gflops, set_threads, write_json
from impasto.config import StyleConfig
from impasto.core import guides as G
from impasto.core.objective import Guides, Objective, Region
from impasto.core.terms import guided_moments
from impasto.weights import load_vgg
from quality import STYLE_LAYERS, _tensor

FOLDER = OUT / "masks"
STYLES = ("starry_night", "the_scream")
MARGIN = 8  # px left out on either side of a border when measuring a region
STRIP = 16  # px: the strip inside a region along its border, measured at the shallow layers (bleed, pale bands)
SHALLOW = ("relu1_1", "relu2_1", "relu3_1")


def sky_mask(photo: Image.Image) -> np.ndarray:
    """golden_gate's sky: the rows above the horizon (where the rows turn dark: the hills), less the red tower
    (thin cables removed by an opening, as a brush would)."""
    a = np.asarray(photo.convert("RGB")).astype(int)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    red = Image.fromarray((((r > b + 40) & (r > g + 25)) * 255).astype(np.uint8))
    red = red.filter(ImageFilter.MinFilter(5)).filter(ImageFilter.MaxFilter(9))
    h = a.shape[0]
    lum = a.mean(2).mean(1)
    horizon = next(y for y in range(int(0.3 * h), h) if lum[y] < 140)
    return ((np.arange(h)[:, None] < horizon) & (np.asarray(red) == 0)).astype(np.float32)


def split_masks(photo: Image.Image) -> dict[str, list[Image.Image]]:
    sky = sky_mask(photo)
    lr = np.zeros_like(sky)
    lr[:, : sky.shape[1] // 2] = 1
    img = lambda a: Image.fromarray((a * 255).astype(np.uint8), "L")
    return {"sky": [img(sky), img(1 - sky)], "lr": [img(lr), img(1 - lr)]}


def keep_ellipse(size: tuple[int, int]) -> Image.Image:
    """An ellipse around the far tower (right of centre, across the horizon), as one would mark a face."""
    w, h = size
    im = Image.new("L", size, 0)
    ImageDraw.Draw(im).ellipse([0.78 * w, 0.33 * h, 0.95 * w, 0.66 * h], fill=255)
    return im


# -- timing --------------------------------------------------------------------------------------------------------
def timing(size: int, steps: int) -> dict:
    vgg = load_vgg("bundled")
    photo = Image.open(IMAGES / "golden_gate.jpg").convert("RGB")
    photo = photo.resize((size, round(size * photo.height / photo.width)), Image.Resampling.LANCZOS)
    content = _tensor(photo)
    styles = [_tensor(Image.open(IMAGES / f"{s}.jpg").convert("RGB").resize((size, size))) for s in STYLES]
    hw = tuple(content.shape[-2:])
    cfg = StyleConfig(size=size, start_size=None, precision="auto")
    sky = torch.from_numpy(sky_mask(photo)).view(1, 1, *hw)
    lr = torch.zeros_like(sky)
    lr[..., : hw[1] // 2] = 1
    variants: dict[str, Guides | None] = {"unmasked": None}
    for name, m in (("sky/rest", sky), ("left/right", lr)):
        for rule in G.RULES:
            variants[f"{name} {rule}"] = Guides([Region(m, (1.0, 0.0)), Region(1 - m, (0.0, 1.0))], rule=rule)
    objectives, build = {}, {}
    for name, guides in variants.items():
        t = time.process_time()
        objectives[name] = Objective(vgg, content, styles, [cfg], guides)
        build[name] = time.process_time() - t
    x = content.clone().requires_grad_(True)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for i in range(steps + 1):  # interleaved, so that load on the machine falls on every variant alike
        for name, obj in objectives.items():
            t = time.process_time()
            obj(x)["total"].sum().backward()
            if i:  # the first is a warm-up
                times[name].append(time.process_time() - t)
            x.grad = None
    base = statistics.median(times["unmasked"])
    rows = {k: {"cpu_s": statistics.median(v), "ratio": statistics.median(v) / base, "build_cpu_s": build[k]}
            for k, v in times.items()}
    print(f"\nstep at {hw[1]}x{hw[0]} (median CPU s of {steps}; build = targets + guides, once per scale)")
    for k, r in rows.items():
        print(f"  {k:<20} {r['cpu_s']:7.2f} s   {r['ratio']:.3f}x   build {r['build_cpu_s']:.2f} s")
    return {"size": list(hw), "steps": steps, "rows": rows}


# -- quality ---------------------------------------------------------------------------------------------------------
def _stats(vgg, img: Image.Image) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {k: v.double() for k, v in vgg(_tensor(img), list(STYLE_LAYERS)).items()}


def _colour(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return pixels.mean(0), np.cov(pixels.T)


def _w2(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    (m1, c1), (m2, c2) = a, b
    vals, vecs = np.linalg.eigh(c1)
    s1 = vecs @ np.diag(np.sqrt(vals.clip(0))) @ vecs.T
    cross = np.linalg.eigvalsh(s1 @ c2 @ s1).clip(0)
    return float(np.sqrt(max(0.0, ((m1 - m2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.sqrt(cross).sum())))


def region_distances(vgg, out: Image.Image, mask: np.ndarray, style_feats, style_colours, strip: bool = False
                     ) -> dict:
    """The region's style distance and colour distance to each style; ``strip``: over the STRIP px inside the region
    along its border instead, at the shallow layers (whose receptive fields are local)."""
    h, w = mask.shape
    m = torch.from_numpy(mask).view(1, 1, h, w)
    inner = m - G.erode(m, STRIP) if strip else G.erode(m, MARGIN)
    feats = _stats(vgg, out)
    dist = {}
    for s, sf in style_feats.items():
        per_layer = []
        for k in SHALLOW if strip else STYLE_LAYERS:
            g = G.layer_guide(inner, k, (h, w), "simple").double()
            second, _, mass = guided_moments(feats[k], g)
            gram = second[0] / mass[0]
            ref = guided_moments(sf[k], None)
            ref_gram = ref[0][0] / ref[2][0]
            per_layer.append(float((gram - ref_gram).norm() / ref_gram.norm()))
        pixels = np.asarray(out, dtype=np.float64).reshape(-1, 3)[inner.flatten().numpy() > 0.5] / 255
        dist[s] = {"style": float(np.mean(per_layer)), "colour": _w2(_colour(pixels), style_colours[s])}
    return dist


def quality(size: int, steps: int | None) -> dict:
    FOLDER.mkdir(parents=True, exist_ok=True)
    vgg = load_vgg("bundled")
    photo_path = IMAGES / "golden_gate.jpg"
    style_paths = [str(IMAGES / f"{s}.jpg") for s in STYLES]
    base = StyleConfig(size=size, **({"steps": steps} if steps else {}))
    probe = Image.open(photo_path).convert("RGB")
    h, w = round(size * probe.height / probe.width), size
    photo = probe.resize((w, h), Image.Resampling.LANCZOS)
    masks = split_masks(photo)
    keep = keep_ellipse((w, h))
    for name, ims in masks.items():
        for i, im in enumerate(ims):
            im.save(FOLDER / f"mask-{name}{i + 1}.png")
    keep.save(FOLDER / "mask-keep.png")
    runs = {"starry_night alone": ({"style_blend": (1, 0)}, {}), "the_scream alone": ({"style_blend": (0, 1)}, {})}
    for split in masks:
        for rule in G.RULES:
            runs[f"{split} {rule}"] = ({"mask_rule": rule}, {"masks": masks[split]})
    runs["sky simple + keep"] = ({"mask_rule": "simple"}, {"masks": masks["sky"], "keep_mask": keep})
    images, secs = {}, {}
    for name, (changes, mask_images) in runs.items():
        path = FOLDER / f"{name.replace(' ', '_').replace('+', 'and')}-{size}.png"
        if path.exists():  # a rerun measures what is there (delete bench/out/masks to run again)
            images[name] = Image.open(path).convert("RGB")
            continue
        t = time.process_time()
        r = impasto.stylize(str(photo_path), style_paths, base.replace(**changes), progress=False, **mask_images)
        secs[name] = time.process_time() - t
        r.image.save(path)
        images[name] = r.image
        print(f"  {name}: {secs[name]:.0f} CPU s → {path}", flush=True)
    style_imgs = {s: Image.open(p).convert("RGB") for s, p in zip(STYLES, style_paths)}
    style_imgs = {s: im.resize((w, round(w * im.height / im.width)), Image.Resampling.BICUBIC)
                  for s, im in style_imgs.items()}
    style_feats = {s: _stats(vgg, im) for s, im in style_imgs.items()}
    style_colours = {s: _colour(np.asarray(im, dtype=np.float64).reshape(-1, 3) / 255) for s, im in style_imgs.items()}
    report: dict = {"size": [h, w], "runs": {}, "cpu_s": secs}
    alone = {"starry_night": "starry_night alone", "the_scream": "the_scream alone"}
    for split, ims in masks.items():
        regions = [np.asarray(m, dtype=np.float32) / 255 for m in ims]
        for rule in [*G.RULES, "single"]:
            for r, (mask, own) in enumerate(zip(regions, STYLES)):
                other = STYLES[1 - r]
                run = alone[own] if rule == "single" else f"{split} {rule}"
                d = region_distances(vgg, images[run], (mask > 0.5).astype(np.float32), style_feats, style_colours)
                b = region_distances(vgg, images[run], (mask > 0.5).astype(np.float32), style_feats, style_colours,
                                     strip=True)
                report["runs"][f"{split} region {r + 1} ({own}) {rule}"] = {
                    "run": run, "own": d[own], "other": d[other], "ratio": d[other]["style"] / d[own]["style"],
                    "strip": {"own": b[own]["style"], "other": b[other]["style"]}}
    for key, row in report["runs"].items():
        single = report["runs"][key.rsplit(" ", 1)[0] + " single"]["own"]["style"]
        row["vs_single"] = row["own"]["style"] / single
    k = np.asarray(keep, dtype=np.float32) / 255 > 0.5
    diff = np.abs(np.asarray(images["sky simple + keep"], dtype=np.float64) - np.asarray(photo, dtype=np.float64))
    report["keep"] = {"max": float(diff[k].max()), "mean": float(diff[k].mean()),
                      "outside_mean": float(diff[~k].mean())}
    print(f"\nper region at {w}x{h} (style: Gram distance, colour: W2 of RGB; own / other style)")
    print(f"  {'region':<42} {'own style':>9} {'other':>7} {'ratio':>6} {'vs alone':>8} {'own col':>8} {'oth col':>8}"
          f" {'strip own':>9} {'other':>6}")
    for key, row in report["runs"].items():
        print(f"  {key:<42} {row['own']['style']:9.3f} {row['other']['style']:7.3f} {row['ratio']:6.2f} "
              f"{row['vs_single']:8.3f} {row['own']['colour']:8.3f} {row['other']['colour']:8.3f} "
              f"{row['strip']['own']:9.3f} {row['strip']['other']:6.3f}")
    kk = report["keep"]
    print(f"\nkeep_mask: |result - photo| inside the mask: max {kk['max']:.1f}, mean {kk['mean']:.2f} (0-255); "
          f"outside it {kk['outside_mean']:.1f}")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["timing", "quality", "both"], default="both")
    p.add_argument("--size", type=int, default=400, help="quality runs' size [400]")
    p.add_argument("--steps", type=int, help="quality runs' steps per scale [impasto's default]")
    p.add_argument("--timing-size", type=int, default=512)
    p.add_argument("--timing-steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    set_threads(args.threads)
    result: dict = {"machine": machine(), "mm_gflops": mm_gflops(), "args": vars(args)}
    if args.part in ("timing", "both"):
        result["timing"] = timing(args.timing_size, args.timing_steps)
    if args.part in ("quality", "both"):
        result["quality"] = quality(args.size, args.steps)
    path = write_json(FOLDER / f"masks-{args.part}-{args.size}.json", result)
    print(f"\nwrote {path}")
    print(json.dumps({"mm_gflops_cpu": round(result["mm_gflops"]["cpu"], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
