"""Border artefacts and flat-area speckle, for each VGG padding mode, beside jcjohnson/neural-style's published outputs.

What it measures on each picture (grey levels are 0-255 luminance or chroma; L = BT.601 luminance):

- ``edge_step``: |mean L of the outermost row/column − mean L of the one 3 px inside|, the largest of the four sides
  (issue 24 quotes up to 13.5 for impasto's defaults, ≤ 9.4 for jcjohnson's);
- ``offset_b`` for bands b = 1, 2, 4, 8, 16 px: mean L of the outer b-px frame − mean L of the interior (deeper than
  32 px), signed (a dark frame is negative);
- ``noise_b``: mean |Laplacian of L| in that frame ÷ the same in the interior (1: as busy as the middle);
- ``style_b``: ‖G(frame) − G(interior)‖ / ‖G(interior)‖ averaged over relu1_1, relu2_1, relu3_1 (G = FFᵀ/n over the
  positions in the frame, at each layer's stride); the measuring VGG uses reflect padding, the same for every picture;
- ``speckle_L`` and ``speckle_C``: mean |Laplacian| of L and of chroma (Cb, Cr averaged) in flat regions (sky,
  water): the pixels, 4 px or more from the edge, whose structure at a coarse scale (the gradient of L blurred with
  σ = 4 px) is in the lowest 30 % of the picture's. The flat regions come from each picture itself, so the published
  outputs (whose photos are held out) are measured the same way as ours.

Runs impasto on ≥ 6 of the gallery's pairs (bench/pairs.py; never jcjohnson's held-out inputs) for each padding
mode, as whole images and with tiles (``--tile``, default half the size, so every picture is 2×2 tiles or more), and
measures jcjohnson's two published 512 px outputs in ../shared/reference as the reference level (their OUTPUTS only:
the engine never sees their inputs). Prints every figure, then ratios against zeros (the run's baseline: VGG's own
padding) and against the reference. Pictures go to bench/out/borders/ for looking at crops.

    export IMPASTO_GALLERY_INPUTS=/work/gallery_inputs  # where bench/pairs.py finds the gallery's inputs
    python bench/borders.py                             # 7 pairs × 4 modes × whole/tiles at 512 px (hours on CPU)
    python bench/borders.py --size 128 --steps 2 --pairs 1 --modes zeros reflect   # a smoke run
    python bench/borders.py --size 256 --tile 0 --modes zeros --variant ema:ema=0.99 --variant tv:tv_weight=1e-4

``--variant NAME:KEY=VALUE,KEY=VALUE`` adds a run with StyleConfig overrides (padding zeros unless it says), measured
and reported beside the modes, to look for the cause of the flat areas' speckle (Adam's steps, TV, the EMA).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from common import OUT, machine, mm_gflops, provenance, write_json
from pairs import FILES, resolve

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
REFERENCE_FILES = ("jcjohnson_golden_gate_starry_512.png", "jcjohnson_tubingen_scream_512.png")
# Pairs with skies, water or walls (flat areas), none tuned on, none held out.
DEFAULT_PAIRS = ["fjord+antimonocromatismo", "sailboat+la_muse", "yosemite+peasant_dress", "reichstag+la_muse",
                 "owls+brushstrokes", "bouquet+flower_still_life", "cornell+cubist_figure"]
MODES = ("zeros", "reflect", "replicate", "replicate-first")
BANDS = (1, 2, 4, 8, 16)
INTERIOR = 32  # px: deeper than this is "the interior"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")


# -- measures -----------------------------------------------------------------------------------------------------
def planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) floats in 0-255 → luminance (H, W) and chroma (2, H, W), BT.601."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = -0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b
    return y, np.stack([cb, cr])


def laplacian(x: np.ndarray) -> np.ndarray:
    """|4-neighbour Laplacian|, edge pixels replicated (so the frame is not measured against a made-up outside)."""
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    return np.abs(p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4 * x)


def depth(h: int, w: int) -> np.ndarray:
    """Each pixel's distance from the nearest edge, in pixels (0 on the outermost ring)."""
    yy, xx = np.mgrid[:h, :w]
    return np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx))


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    r = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    t = torch.from_numpy(np.pad(x, r, mode="reflect"))[None, None]
    t = F.conv2d(t, torch.from_numpy(k)[None, None, None, :])
    return F.conv2d(t, torch.from_numpy(k)[None, None, :, None])[0, 0].numpy()


def flat_mask(y: np.ndarray, d: np.ndarray) -> np.ndarray:
    by = blur(y, 4.0)
    grad = np.hypot(*np.gradient(by))
    inside = d >= 4
    return inside & (grad <= np.quantile(grad[inside], 0.3))


def gram(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    x = f[0][:, mask].double()  # (C, n)
    return x @ x.T / max(1, x.shape[1])


def style_distance(feats: dict[str, torch.Tensor], b: int) -> float:
    out = []
    for k, f in feats.items():
        stride = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4}[k]
        fd = torch.from_numpy(depth(*f.shape[-2:]))
        band = fd < max(1, b // stride)
        interior = fd >= INTERIOR // stride
        if not interior.any():
            return float("nan")
        gi = gram(f, interior)
        out.append(float(torch.linalg.norm(gram(f, band) - gi) / torch.linalg.norm(gi)))
    return float(np.mean(out))


def measure(path: Path, net: torch.nn.Module) -> dict[str, float]:
    im = Image.open(path).convert("RGB")
    rgb = np.asarray(im, dtype=np.float64)
    y, c = planes(rgb)
    h, w = y.shape
    d = depth(h, w)
    out: dict[str, float] = {}
    sides = [(y[0], y[3]), (y[-1], y[-4]), (y[:, 0], y[:, 3]), (y[:, -1], y[:, -4])]
    out["edge_step"] = max(abs(a.mean() - b.mean()) for a, b in sides)
    interior = d >= INTERIOR
    lap_y, lap_c = laplacian(y), laplacian(c).mean(0)
    with torch.no_grad():
        t = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
        feats = net(t, STYLE_LAYERS)
    for b in BANDS:
        band = d < b
        out[f"offset_{b}"] = y[band].mean() - y[interior].mean() if interior.any() else float("nan")
        out[f"noise_{b}"] = lap_y[band].mean() / lap_y[interior].mean() if interior.any() else float("nan")
        out[f"style_{b}"] = style_distance(feats, b)
    flat = flat_mask(y, d)
    out["speckle_L"], out["speckle_C"] = lap_y[flat].mean(), lap_c[flat].mean()
    return {k: float(v) for k, v in out.items()}


# -- runs ----------------------------------------------------------------------------------------------------------
def pair_files(pair: str) -> tuple[Path, Path] | None:
    content, style = pair.split("+")
    paths = [resolve(n, lambda _name: None) for n in (content, style)]
    return (paths[0], paths[1]) if all(paths) else None


def variant(text: str) -> tuple[str, dict[str, str]]:
    """``NAME:KEY=VALUE,KEY=VALUE`` → (NAME, overrides); the values are parsed by StyleConfig as the CLI's are."""
    name, _, rest = text.partition(":")
    pairs = [kv.split("=", 1) for kv in rest.split(",") if kv]
    if not name or not pairs or any(len(kv) != 2 for kv in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME:KEY=VALUE[,KEY=VALUE], e.g. ema:ema=0.99")
    return name, {k: v for k, v in pairs}


def overrides(mode: str, args: argparse.Namespace) -> dict[str, object]:
    """StyleConfig fields for a mode: a padding mode, or a --variant's overrides (on zeros padding; StyleConfig
    coerces the strings as it does the CLI's)."""
    extra = dict(args.variant).get(mode)
    return {"padding": mode} if extra is None else {"padding": "zeros", **extra}


def paint(pair: str, files: tuple[Path, Path], mode: str, tile: int, args: argparse.Namespace, folder: Path) -> Path:
    import impasto

    out = folder / f"{pair}.{mode}{'.tiles' if tile else ''}.png"
    if out.exists() and not args.force:
        return out
    cfg = impasto.StyleConfig(size=args.size, tile_size=tile, **overrides(mode, args),
                              **({"steps": args.steps} if args.steps else {}),
                              **({"start_size": min(128, args.size // 2)} if args.size < 256 else {}))
    impasto.stylize(str(files[0]), str(files[1]), cfg, output=out, progress=False)
    return out


def summary(rows: list[dict], keys: list[str]) -> dict[str, float]:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}


def report(rows: list[dict], modes: list[str], size: int) -> dict[str, dict[str, float]]:
    """Print the means per mode (whole and tiled) and their ratios against zeros and jcjohnson."""
    keys = ["edge_step", *(f"{m}_{b}" for m in ("offset", "noise", "style") for b in BANDS), "speckle_L", "speckle_C"]
    groups: dict[str, dict[str, float]] = {}
    for mode in ["jcjohnson", *modes]:
        for tiled in (False, True):
            sel = [r for r in rows if r["mode"] == mode and r["tiles"] == tiled]
            if sel:
                groups[f"{mode}{' tiles' if tiled else ''}"] = summary(sel, keys)
    show = ["edge_step", "offset_1", "offset_4", "offset_16", "noise_1", "noise_4", "style_2", "style_8",
            "speckle_L", "speckle_C"]
    print(f"\nmeans over pictures ({size} px; grey levels 0-255; noise and style: frame against interior)")
    print(f"{'':<24}" + "".join(f"{k:>11}" for k in show))
    for g, vals in groups.items():
        print(f"{g:<24}" + "".join(f"{vals[k]:>11.3f}" for k in show))
    ratio_keys = ["edge_step", "noise_1", "noise_4", "style_2", "speckle_L", "speckle_C"]
    for base in ("zeros", "jcjohnson"):
        if base not in groups:
            continue
        print(f"\nratios against {base} (the same run's figures; edge_step, style and speckle: < 1 is cleaner; noise_b "
              "is itself a ratio, frame ÷ interior, whose ideal is 1: here below 1 means a flatter frame)")
        print(f"{'':<24}" + "".join(f"{k:>11}" for k in ratio_keys))
        for g, vals in groups.items():
            if g != base:
                print(f"{g:<24}" + "".join(f"{vals[k] / groups[base][k]:>11.3f}" if groups[base][k] else f"{'–':>11}"
                                            for k in ratio_keys))
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", nargs="*", default=None, help=f"pair names, or a number of the defaults "
                    f"[default: {len(DEFAULT_PAIRS)}: {', '.join(DEFAULT_PAIRS)}]")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--size", type=int, default=512, help="long side [default: 512, the reference's]")
    ap.add_argument("--steps", type=int, help="steps per scale [default: impasto's]")
    ap.add_argument("--tile", type=int, help="tile size for the tiled runs [default: size / 2, on the 16 px grid]; "
                    "0: no tiled runs")
    ap.add_argument("--variant", type=variant, action="append", default=[], metavar="NAME:KEY=VALUE,…",
                    help="also run StyleConfig overrides under NAME (zeros padding unless given), e.g. ema:ema=0.99")
    ap.add_argument("--force", action="store_true", help="paint again pictures already in bench/out/borders")
    args = ap.parse_args()
    names = DEFAULT_PAIRS if not args.pairs else (DEFAULT_PAIRS[: int(args.pairs[0])] if args.pairs[0].isdigit()
                                                 else args.pairs)
    for n in names:
        if any(part not in FILES for part in n.split("+")):
            sys.exit(f"borders.py: unknown pair {n!r}; pairs are named CONTENT+STYLE from bench/pairs.py")
    tile = args.tile if args.tile is not None else max(64, args.size // 2 // 16 * 16)
    folder = OUT / "borders" / f"{args.size}px"
    folder.mkdir(parents=True, exist_ok=True)
    from impasto.weights import load_vgg  # the measuring network: reflect padding, the same for every picture

    net = load_vgg("bundled", "max", "cpu", "reflect")
    rows: list[dict] = []
    for name in REFERENCE_FILES:
        if (REFERENCE / name).is_file():
            rows.append({"picture": name, "mode": "jcjohnson", "tiles": False, **measure(REFERENCE / name, net)})
    if not rows:
        print(f"borders.py: no reference outputs in {REFERENCE}; ratios against jcjohnson are left out", file=sys.stderr)
    elif args.size != 512:
        print(f"borders.py: the reference outputs are 512 px and these {args.size} px: per-pixel measures (speckle, "
              "noise) compare only at --size 512", file=sys.stderr)
    for pair in names:
        files = pair_files(pair)
        if files is None:
            print(f"borders.py: {pair}: inputs not found (bench/pairs.py says where they come from); skipped",
                  file=sys.stderr)
            continue
        for mode in [*args.modes, *(name for name, _ in args.variant)]:
            made = []
            for t in ([0, tile] if tile else [0]):
                out = paint(pair, files, mode, t, args, folder)
                made.append(np.asarray(Image.open(out), dtype=int))
                rows.append({"picture": out.name, "mode": mode, "tiles": bool(t), **measure(out, net)})
                print(f"  measured {out.name}", file=sys.stderr)
            if len(made) == 2:  # the whole image's gradient up to fp32 rounding, which Adam's steps amplify
                diff = np.abs(made[0] - made[1])
                print(f"  {pair} {mode}: tiled against whole, max {diff.max()} grey levels, "
                      f"{(diff > 0).mean():.2%} of values differ", file=sys.stderr)
    groups = report(rows, [*args.modes, *(name for name, _ in args.variant)], args.size)
    path = write_json(folder / "borders.json", {"rows": rows, "means": groups, "args": vars(args),
                                                "machine": machine(), "mm_gflops": mm_gflops(),
                                                "provenance": provenance()})
    print(f"\nwrote {path} and the pictures beside it")


if __name__ == "__main__":
    main()
