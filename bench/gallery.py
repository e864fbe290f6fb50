"""The gallery: impasto's new defaults beside its previous ones, jcjohnson/neural-style's published outputs and any
presets, on many content/style pairs, with the quality meter's figures and each run's CPU and wall seconds under
every picture: one HTML page, one PNG contact sheet and a JSON of the figures, in bench/out/gallery/.

    python bench/gallery.py                                  # the 21 pairs of bench/pairs.py, old and new defaults
    python bench/gallery.py --size 256 --drop old --also neighbour --look   # Gram defaults against neighbours
    python bench/gallery.py --only new --force               # after changing the defaults: redo the new column only
    python bench/gallery.py --size 64 --steps 5 --pairs fjord+portrait owls+brushstrokes  # a quick test

The pairs (bench/pairs.py) come from public repositories' example inputs (fetched by hand into
$IMPASTO_GALLERY_INPUTS, see bench/pairs.py), and scikit-image; a pair whose inputs are not there
is skipped with a note. Under each picture of a portrait painting with its faces marked, ``copying``: the share of
the picture's relu4_1 locations whose nearest painting location lies in a face (impasto.api.Meter.copying), beside
the photo's own share. Each picture is rendered in a child process of its own, one at a time, and cached under renders/PAIR/KEY.png by its
config's key: rerunning after a change to the new defaults does not redo the old defaults' pictures (``--force``
does). The ``portrait`` styles are scikit-image's astronaut photo (NASA, public domain), painted by a deterministic
filter here (``pip install scikit-image``: a bench-only dependency); they test leakage: eyes or faces from the style
must not appear in the photo.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from common import IMAGES, OUT, machine, mm_gflops, source_hash, write_json
from pairs import FACES, FILES, INPUTS, PAIRS, TUNED, paint, resolve

GALLERY = OUT / "gallery"
REFERENCE = IMAGES.parent / "reference"
DEFAULT_PAIRS = PAIRS
JCJOHNSON = {"golden_gate+starry_night": "jcjohnson_golden_gate_starry_512.png",
             "tubingen+the_scream": "jcjohnson_tubingen_scream_512.png"}

# The defaults of impasto 451dd0f, every field written down: the "old defaults" column, whatever StyleConfig() is now.
OLD_DEFAULTS: dict[str, Any] = {
    "size": 512, "shape": None, "start_size": 128, "scale_factor": 2**0.5, "steps": 100, "first_steps": None,
    "scale_steps": None, "optimizer": "adam", "lr": 0.02, "content_weight": 1.0, "style_weight": 10.0,
    "tv_weight": 0.0, "temporal_weight": 100.0, "content_layers": ["relu4_2"],
    "style_layers": {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0},
    "style_blend": None, "style_scale": 1.0, "init": "content", "seed": 0, "device": "auto", "weights": "bundled",
    "pooling": "max", "loss_norm": "relative", "style_loss": "gram", "param": "rgb", "ema": None, "tol": None,
    "preserve_color": "none", "masks": None, "mask_colors": None, "keep_mask": None, "style_masks": None,
    "mask_rule": "simple", "mask_feather": 0.01, "tile_size": 0, "precision": "auto", "checkpoint": False,
    "save_every": 0, "max_pixels": 40_000_000, "preset": None,
}
MEASURES = ("style", "style14", "content", "colour")


# -- the meter: the one place to switch ---------------------------------------------------------------------------
def make_meter(content: Path, style: Path) -> tuple[str, Callable[[Path], dict[str, float]]]:
    """(the meter's name, image → {style, style14, content[, colour]}) for one pair.

    The library's meter (``impasto.api.Meter``: style, style14, content, colour), or on a checkout without it
    bench/quality.py's, whose per-layer figures give style14 (relu1_1…relu4_1: no relu5_1 Grams) but no colour.
    """
    import impasto.api

    if hasattr(impasto.api, "Meter"):
        lib = impasto.api.Meter(content, style)
        return "impasto.api.Meter", lambda p: {k: float(v) for k, v in lib(p).as_dict().items() if k in MEASURES}
    from quality import Meter

    bench = Meter(content, style)

    def measure(path: Path) -> dict[str, float]:
        d = bench(path)
        return {"style": d["style"], "style14": float(np.mean([d[f"relu{i}_1"] for i in range(1, 5)])),
                "content": d["content"]}

    return "bench/quality.py", measure


def made_style(name: str) -> Path:
    path = GALLERY / "styles" / f"{name}.png"
    if not path.exists():
        try:
            from skimage import data
        except ImportError:
            raise SystemExit("the portrait styles need scikit-image: pip install scikit-image") from None
        photo = Image.fromarray(data.astronaut())
        if name == "portrait_face":
            photo = photo.crop((150, 20, 330, 240))  # the face and helmet rim
        path.parent.mkdir(parents=True, exist_ok=True)
        paint(photo).save(path)
    return path


def pair_files(pair: str) -> tuple[Path, Path]:
    """The pair's photo and painting (bench/pairs.py); a one-line exit when one is unknown or not fetched."""
    names = pair.split("+")
    if len(names) != 2 or any(n not in FILES for n in names):
        raise SystemExit(f"unknown pair {pair!r}: give PHOTO+STYLE, each one of {', '.join(FILES)}")
    paths = [resolve(n, made_style) for n in names]
    if None in paths:
        missing = names[paths.index(None)]
        raise SystemExit(f"{pair}: {missing} ({'/'.join(FILES[missing])}) is not there: fetch the inputs as "
                         f"bench/pairs.py says, into {INPUTS}")
    return paths[0], paths[1]  # type: ignore[return-value]


# -- rendering: one child process a picture ------------------------------------------------------------------------
def child(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    import impasto

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    cfg = impasto.StyleConfig(**spec["config"])
    cpu, wall = time.process_time(), time.perf_counter()  # the run alone: not Python's start nor torch's import
    result = impasto.stylize(spec["content"], [spec["style"]], cfg, progress=False)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    result.save(spec["output"])
    return {"cpu": cpu, "wall": wall, "status": result.status, "steps": result.recipe["steps_done"],
            "precision": result.recipe["precision"], "threads": torch.get_num_threads(),
            "mm": mm_gflops(seconds=0.2)}


def cache_paths(pair: str, cfg: Any) -> tuple[Path, Path]:
    png = GALLERY / "renders" / pair / f"{cfg.key()}.png"
    return png, png.with_suffix(".json")


def cached(pair: str, cfg: Any) -> dict[str, Any] | None:
    png, meta = cache_paths(pair, cfg)
    return {**json.loads(meta.read_text()), "file": str(png)} if png.exists() and meta.exists() else None


def render(pair: str, cfg: Any, threads: int, code: str) -> dict[str, Any]:
    png, meta = cache_paths(pair, cfg)
    content, style = pair_files(pair)
    spec = {"content": str(content), "style": str(style), "config": cfg.to_dict(), "output": str(png),
            "threads": threads}
    png.parent.mkdir(parents=True, exist_ok=True)
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    info.update(process_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
                process_wall=time.perf_counter() - t, key=cfg.key(), code=code, rendered=time.strftime("%F %T"))
    write_json(meta, info)
    return {**info, "file": str(png)}


def overrides(a: argparse.Namespace) -> dict[str, Any]:
    quick = {"size": a.size} if a.size else {}
    if a.steps:  # quick tests only: the same steps at every scale, whatever the schedule was
        quick |= {"steps": a.steps, "first_steps": a.steps, "scale_steps": None}
    return quick


def configs(a: argparse.Namespace) -> dict[str, Any]:
    import impasto
    from impasto.config import FIELD_NAMES, from_dict

    old = {k: v for k, v in OLD_DEFAULTS.items() if k in FIELD_NAMES}  # a field removed since: left out, said so
    for k in sorted(set(OLD_DEFAULTS) - set(old)):
        print(f"note: {k!r} is no longer a setting; the old defaults leave it out")
    for name in {*a.also, *(a.only or [])} - {"old", "new", *impasto.PRESETS}:
        raise SystemExit(f"unknown preset or column {name!r}: choose old, new or one of {', '.join(impasto.PRESETS)}")
    cfgs = {"old": from_dict(old), "new": impasto.StyleConfig(), **{p: impasto.preset(p) for p in a.also}}
    cfgs = {label: c for label, c in cfgs.items() if label not in a.drop}
    quick = overrides(a)
    return {label: c.replace(**quick) if quick else c for label, c in cfgs.items()}


def copying_meter(pair: str) -> Callable[[Path], float] | None:
    """For a portrait painting with its faces marked (bench/pairs.py FACES): picture → the share of its relu4_1
    locations whose nearest painting location lies in a face (impasto.api.Meter.copying); else None."""
    import impasto.api

    style = pair.split("+")[1]
    if style not in FACES or not hasattr(impasto.api.Meter, "copying"):
        return None
    meter = impasto.api.Meter(*pair_files(pair))
    return lambda p: meter.copying(p, FACES[style])


# -- the page, the sheet and the close looks ----------------------------------------------------------------------
def title(label: str) -> str:
    return {"old": "old defaults (451dd0f)", "new": "new defaults", "jcjohnson": "jcjohnson/neural-style"}.get(
        label, label)


def caption(cell: dict[str, Any]) -> list[str]:
    if "note" in cell:
        return [cell["note"], *([cell["about"]] if "about" in cell else [])]
    if "error" in cell:
        return ["failed:", cell["error"][:60]]
    m = cell.get("meter", {})
    fmt = {"colour": ".1f"}  # ΔE*ab units; the others are relative distances
    lines = ["  ".join(f"{k} {m[k]:{fmt.get(k, '.3f')}}" for k in pair if k in m)
             for pair in (("style", "style14"), ("content", "colour"), ("copying",)) if any(k in m for k in pair)]
    if "cpu" in cell:
        lines.append(f"CPU {cell['cpu']:.0f} s  wall {cell['wall']:.0f} s")
    if "about" in cell:
        lines.append(cell["about"])
    return lines


def columns(labels: list[str]) -> list[str]:
    return ["content", "style", "jcjohnson", *labels]


def open_image(cell: dict[str, Any]) -> Image.Image | None:
    return Image.open(cell["file"]).convert("RGB") if "file" in cell else None


def sheet(rows: dict[str, dict[str, dict]], labels: list[str], cell_w: int) -> Image.Image:
    font = ImageFont.load_default(size=max(11, cell_w // 20))
    lh, pad, head_w = font.size + 4, 6, cell_w * 2 // 5
    box_h, text_h = cell_w * 3 // 4, 4 * lh + 10
    cols = columns(labels)
    width, height = head_w + len(cols) * (cell_w + pad), lh + 8 + len(rows) * (box_h + text_h + pad)
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    for j, col in enumerate(cols):
        d.text((head_w + j * (cell_w + pad), 4), title(col), fill="black", font=font)
    for i, (pair, cells) in enumerate(rows.items()):
        y = lh + 8 + i * (box_h + text_h + pad)
        d.multiline_text((4, y + 4), pair.replace("+", "\n+ "), fill="black", font=font)
        for j, col in enumerate(cols):
            x, cell = head_w + j * (cell_w + pad), cells.get(col, {"note": "not rendered"})
            picture = open_image(cell)
            if picture is None:  # the note inside the blank cell, nothing under it
                d.rectangle([x, y, x + cell_w - 1, y + box_h - 1], fill=(235, 235, 235))
                d.multiline_text((x + cell_w // 2, y + box_h // 2), "\n".join(caption(cell)), fill=(90, 90, 90),
                                 font=font, anchor="mm", align="center")
                continue
            s = min(cell_w / picture.width, box_h / picture.height)  # up too: a quick test's 64 px stays visible
            picture = picture.resize((round(picture.width * s), round(picture.height * s)), Image.Resampling.LANCZOS)
            img.paste(picture, (x + (cell_w - picture.width) // 2, y + (box_h - picture.height) // 2))
            for k, line in enumerate(caption(cell)):
                d.text((x, y + box_h + 3 + k * lh), line, fill=(20, 20, 20), font=font)
    return img


def look(cells: dict[str, dict], labels: list[str]) -> Image.Image:
    """One pair's row at full resolution: each render as it is; content and style scaled to the same height."""
    pics = [(col, open_image(cells[col])) for col in columns(labels) if col in cells and "file" in cells[col]]
    h = max((p.height for col, p in pics if col not in ("content", "style")), default=512)
    pics = [(col, p.resize((round(p.width * h / p.height), h), Image.Resampling.LANCZOS)) for col, p in pics]
    font = ImageFont.load_default(size=16)
    slots = [max(p.width, round(font.getlength(title(col)))) + 8 for col, p in pics]  # a label never overlaps
    out = Image.new("RGB", (sum(slots), h + 26), "white")
    x = 0
    for (col, p), slot in zip(pics, slots):
        ImageDraw.Draw(out).text((x + 2, 3), title(col), fill="black", font=font)
        out.paste(p, (x, 26))
        x += slot
    return out


def embed(path: str, long_side: int = 512) -> str:
    im = Image.open(path).convert("RGB")
    im.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def page(figures: dict[str, Any], labels: list[str]) -> str:
    cols, esc = columns(labels), html.escape
    head = "".join(f"<th>{esc(title(c))}</th>" for c in cols)
    body = []
    for pair, cells in figures["pairs"].items():
        tds = []
        for col in cols:
            cell = cells.get(col, {"note": "not rendered"})
            pic = f'<img src="{embed(cell["file"])}">' if "file" in cell else '<div class="blank"></div>'
            if Path(cell.get("file", "/")).is_relative_to(GALLERY):  # the full-size PNG beside the page
                pic = f'<a href="{esc(str(Path(cell["file"]).relative_to(GALLERY)))}">{pic}</a>'
            tds.append(f"<td>{pic}<br>{'<br>'.join(esc(t) for t in caption(cell))}</td>")
        body.append(f"<tr><th>{esc(pair)}</th>{''.join(tds)}</tr>")
    base = "old" if "old" in figures["configs"] else next(iter(figures["configs"]))  # --drop old: the first column
    old = figures["configs"][base]["config"]
    diffs = "".join(f"<li><b>{esc(lab)}</b>: " + esc(", ".join(f"{k} = {v!r}" for k, v in c["config"].items()
                                                             if k not in ("device",) and old.get(k) != v) or "the same")
                    + "</li>" for lab, c in figures["configs"].items() if lab != base)
    return f"""<!doctype html><meta charset="utf-8"><title>impasto gallery</title>
<style>body{{font:13px sans-serif}} td,th{{vertical-align:top;padding:4px;text-align:left}}
img{{max-width:320px;max-height:260px}} .blank{{width:320px;height:240px;background:#eee}}</style>
<h1>impasto gallery</h1>
<p>Meter: {esc(figures["meter"])} (lower is better; style14 leaves out relu5_1, the layer that carries object parts).
Times: the stylize call alone in a child process of its own, one at a time: CPU seconds (all threads) and wall
seconds. {esc(json.dumps(figures["machine"]))}</p>
<p>Old defaults: impasto 451dd0f's, pinned in bench/gallery.py: {esc(json.dumps(OLD_DEFAULTS))}.
Quick-test overrides of every column: {esc(json.dumps(figures["overrides"]) if figures["overrides"] else "none")}.</p>
<p>Against them:</p><ul>{diffs}</ul>
<table><tr><th>pair</th>{head}</tr>{"".join(body)}</table>
"""


def meter_rows(rows: dict[str, dict[str, dict]], labels: list[str]) -> str:
    """Each rendered picture's meter figures (and copying, on portraits), in place; → the meter's name."""
    meter_name = ""
    for pair, cells in rows.items():
        meter_name, measure = make_meter(*pair_files(pair))
        copying = copying_meter(pair)
        for col in ("jcjohnson", *labels):
            if "file" in cells.get(col, {}):
                cells[col]["meter"] = measure(Path(cells[col]["file"]))
                if copying is not None:
                    cells[col]["meter"]["copying"] = copying(Path(cells[col]["file"]))
        if copying is not None:  # the photo's own share: what a picture that copies nothing scores
            cells["content"]["about"] = f"copying {copying(Path(cells['content']['file'])):.3f} (the photo's)"
        if pair in TUNED:
            cells["style"]["about"] = "tuned on"
    return meter_name


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS, metavar="PHOTO+STYLE")
    p.add_argument("--also", nargs="+", default=[], metavar="PRESET", help="presets to show beside the defaults")
    p.add_argument("--only", nargs="+", metavar="LABEL", help="render only these columns (old, new, a preset); "
                   "the others are shown from the cache where it has them")
    p.add_argument("--drop", nargs="+", default=[], metavar="LABEL", help="columns to leave out (old, new)")
    p.add_argument("--force", action="store_true", help="render again what is cached")
    p.add_argument("--size", type=int, help="quick tests only: every config's size")
    p.add_argument("--steps", type=int, help="quick tests only: every config's steps at every scale")
    p.add_argument("--threads", type=int, default=0, help="torch threads of each run (0: torch's default)")
    p.add_argument("--cell", type=int, default=300, help="width of a picture on the sheet")
    p.add_argument("--look", action="store_true", help="also each pair's row at full resolution: look/PAIR.png")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(json.loads(a.child))))
        return 0
    import impasto

    cfgs = configs(a)
    labels = list(cfgs)
    code = source_hash(impasto.__file__)
    rows: dict[str, dict[str, dict]] = {}
    for pair in a.pairs:
        try:
            content, style = pair_files(pair)
        except SystemExit as e:  # an input not fetched: the other pairs still render
            print(f"note: skipped {e}")
            continue
        cells: dict[str, dict] = {"content": {"file": str(content), "note": content.name},
                                  "style": {"file": str(style), "note": style.name}}
        ref = REFERENCE / JCJOHNSON.get(pair, "none")
        published = {"file": str(ref), "about": "published: 1000 L-BFGS steps"}
        cells["jcjohnson"] = published if ref.is_file() else {"note": "no published output"}
        for label, cfg in cfgs.items():
            hit = cached(pair, cfg)  # --only: the other columns as the cache has them, even with --force
            if (hit is None or a.force) and (a.only is None or label in a.only):
                print(f"{pair:28s} {label:12s} rendering {cfg.key()} …", flush=True)
                hit = render(pair, cfg, a.threads, code)
                done = hit.get("error") or f"CPU {hit['cpu']:.0f} s, wall {hit['wall']:.0f} s"
                print(f"{'':41s} {done}", flush=True)
            elif hit is not None and hit.get("code") != code:
                print(f"note: {pair} {label} was rendered by other code ({hit.get('code')}); --force to redo")
            if hit is not None:
                cells[label] = hit
        rows[pair] = cells
    meter_name = meter_rows(rows, labels)
    figures = {"machine": machine(), "code": code, "meter": meter_name, "measures": list(MEASURES),
               "timing": "cpu/wall: the stylize call in its child (process_cpu/process_wall: the whole child)",
               "old_defaults": OLD_DEFAULTS, "overrides": overrides(a),
               "configs": {lab: {"key": c.key(), "config": c.to_dict()} for lab, c in cfgs.items()}, "pairs": rows}
    write_json(GALLERY / "figures.json", figures)
    (GALLERY / "index.html").write_text(page(figures, labels), encoding="utf-8")
    sheet(rows, labels, a.cell).save(GALLERY / "sheet.png")
    if a.look:
        for pair, cells in rows.items():
            (GALLERY / "look").mkdir(parents=True, exist_ok=True)
            look(cells, labels).save(GALLERY / "look" / f"{pair}.png")
    print(f"wrote {GALLERY / 'index.html'}, {GALLERY / 'sheet.png'}, {GALLERY / 'figures.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
