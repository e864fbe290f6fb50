"""The sweep's report: the contact sheet, the loss plots, and a Markdown and a self-contained HTML page.

``publish(result)`` rewrites them all (atomically) from the sweep's current state; the runner calls it as the sweep
goes, so a long sweep can be watched by reloading ``report.html``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shlex
from pathlib import Path
from typing import Any

from PIL import Image

from ..api import TERMS as TERM_NAMES
from ..api import describe_convention
from ..config import FIELD_NAMES
from ..errors import ConfigError
from ..io.files import atomic_write, path_problem, printable
from . import findings
from .plots import NO_MATPLOTLIB, TERMS, have_matplotlib, plot_terms, render_plot
from .results import SweepResult, VariantResult, read_status
from .sheet import render_sheet, state_text
from .spec import describe_value
from .store import write_json


def publish(result: SweepResult, *, plots: bool = True) -> dict[str, Path]:
    """Write sheet.png, plots/loss-TERM.{png,svg}, report.md, report.html and sweep.json; return their paths.
    Without matplotlib there are no plots, and the report says what to install."""
    out = result.output
    missing = ""
    if plots and not have_matplotlib():
        plots, missing = False, NO_MATPLOTLIB
    files: dict[str, Path] = {}
    sheet = render_sheet(result)
    buf = io.BytesIO()
    sheet.save(buf, "PNG", optimize=False)
    sheet_png = buf.getvalue()
    files["sheet"] = out / "sheet.png"
    atomic_write(files["sheet"], sheet_png)
    svgs: dict[str, bytes] = {}
    if plots:
        title = result.experiment.title or result.experiment.name
        for term in plot_terms(result.variants):
            png, svg = render_plot(term, result.variants, title=title)
            for ext, data in (("png", png), ("svg", svg)):
                files[f"plot_{term}_{ext}"] = out / "plots" / f"loss-{term}.{ext}"
                atomic_write(files[f"plot_{term}_{ext}"], data)
            svgs[term] = svg
    files["report_md"] = out / "report.md"
    atomic_write(files["report_md"], markdown(result, list(svgs), missing).encode())
    files["report_html"] = out / "report.html"
    atomic_write(files["report_html"], page(result, sheet_png, svgs, missing).encode())
    files["manifest"] = out / "sweep.json"
    write_json(files["manifest"], manifest(result))
    result.files = files
    return files


# -- shared pieces ---------------------------------------------------------------------------------------------------
def changed_keys(result: SweepResult) -> list[str]:
    """The settings that differ from the base in at least one variant, in StyleConfig's field order."""
    keys = {k for v in result.variants for k in v.changes}
    return [k for k in FIELD_NAMES if k in keys]


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _mib(n: int | None) -> str:
    return "" if not n else f"{n / 2**20:.0f}"


def rows(result: SweepResult) -> tuple[list[str], list[list[str]]]:
    """The variants table: the base's row first (its values for the changed keys), then each variant."""
    keys = changed_keys(result)
    base = result.experiment.base.to_dict()
    terms = [t for t in TERM_NAMES if t in ("content", "style")
             or any(h.get(t, 0) > 0 for v in result.variants for h in v.history)]  # one column per term in use
    header = ["variant", *keys, *terms, "total", "steps", "time (s)", "batch", "peak MiB", "status"]
    table = [["(base)", *[describe_value(k, base[k]) for k in keys], *[""] * (len(terms) + 6)]]
    for v in result.variants:
        losses = v.losses
        table.append([
            v.name, *[describe_value(k, v.changes[k], base.get(k)) if k in v.changes else "" for k in keys],
            *[_fmt(losses.get(t)) for t in terms], _fmt(losses.get("total")),
            f"{v.steps_done}/{v.total_steps}", f"{v.elapsed:.1f}" if v.steps_done else "", str(v.batch_size or ""),
            _mib(v.peak_memory), v.status + (" (earlier run)" if v.skipped else ""),
        ])
    return header, table


def command(result: SweepResult) -> str:
    exp = result.experiment
    parts = ["impasto", "sweep", str(exp.path) if exp.path else f"{exp.name}.toml",
             "--content", result.content.name, "--style", *[s.name for s in result.styles]]
    for key in ("size", "steps", "fast_forward"):
        if key in result.overrides:
            parts += [f"--{key.replace('_', '-')}", str(result.overrides[key])]
    parts += ["-o", str(result.output)]
    return shlex.join(parts)


def toml_lines(values: dict[str, Any]) -> list[str]:
    out = []
    for k, v in values.items():
        if v is None:
            if k != "preset":  # "none" is how impasto's TOML spells None (TOML has no null)
                out.append(f'{k} = "none"')
        elif isinstance(v, dict):
            out.append(f"{k} = {{ " + ", ".join(f"{n} = {w!r}" for n, w in v.items()) + " }")
        else:
            out.append(f"{k} = {json.dumps(v)}")
    return out


def manifest(result: SweepResult) -> dict[str, Any]:
    exp = result.experiment
    return {
        "experiment": str(exp.path) if exp.path else exp.name, "title": exp.title, "status": result.status,
        "elapsed_s": round(result.elapsed, 3), "inputs": {"content": result.content.name,
                                                         "styles": [s.name for s in result.styles]},
        "overrides": result.overrides, "base": exp.base.to_dict(),
        "variants": [{
            "name": v.name, "key": v.key, "status": v.status, "changes": v.changes, "note": v.note,
            "steps_done": v.steps_done, "total_steps": v.total_steps, "elapsed_s": round(v.elapsed, 3),
            "batch_size": v.batch_size, "peak_memory": v.peak_memory, "memory_kind": v.memory_kind,
            "final_losses": v.losses, "image": f"runs/{v.slug}.png" if v.path else None,
            "history": f"runs/{v.slug}.losses.csv" if v.path else None,
        } for v in result.variants],
        **({"findings": found} if (found := findings.manifest(result)) is not None else {}),
    }


def read_manifest(path: str | Path) -> dict[str, Any]:
    """A sweep's ``sweep.json`` (for tools and notebooks), its statuses in today's words: a manifest from before
    the one vocabulary says ``incomplete`` (now ``failed``) and ``pending`` (now ``queued``)."""
    problem = path_problem(path)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    try:  # read as if a stranger wrote it: one line for anything that is not a sweep's manifest
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("variants", []), list) \
                or not all(isinstance(v, dict) for v in data.get("variants", [])):
            raise ValueError("not an object with a list of variants")
        data["status"] = read_status(data.get("status"))
        for v in data.get("variants", []):
            v["status"] = read_status(v.get("status"))
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError(f"{path}: not a sweep manifest ({printable(str(e))[:100]})") from None
    return data


def _intro(result: SweepResult) -> str:
    done = sum(v.finished for v in result.variants)
    return (f"{len(result.variants)} variants, {done} finished ({result.status}); "
            f"{sum(v.steps_done for v in result.variants)} steps in all. Content: {result.content.name}. "
            f"Style{'s' if len(result.styles) > 1 else ''}: " + ", ".join(s.name for s in result.styles) + ".")


def _notes(result: SweepResult) -> list[str]:
    c0 = result.experiment.base
    return [
        (f"Losses, {describe_convention(c0.loss_norm, c0.weights)}. Content, style and "
         "tv are the unweighted terms at the last step; total is the weighted sum that was minimised."),
        ("Time is each variant's optimisation time. Variants in one batch ran together through VGG, so they share "
         "it, and the peak memory: the GPU's allocated memory, or on a CPU the process's resident memory."),
        "Blank cells have the base's value; the (base) row gives it.",
    ]


def _reproducible(result: SweepResult) -> bool:
    return not any(name.startswith("<") for name in [result.content.name, *(s.name for s in result.styles)])


# -- Markdown --------------------------------------------------------------------------------------------------------
def markdown(result: SweepResult, terms: list[str], missing: str = "") -> str:
    exp = result.experiment
    header, table = rows(result)
    out = [f"# {exp.title or 'impasto sweep: ' + exp.name}", ""]
    if exp.description:
        out += [exp.description.strip(), ""]
    out += [_intro(result), "", "## Variants", ""]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join("---" for _ in header) + "|")
    for row in table:
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    out += [""] + [f"- {n}" for n in _notes(result)]
    notes = [v for v in result.variants if v.note]
    if notes:
        out += ["", "What each variant tests:", ""]
        out += [f"- **{v.name}**: {v.note}" for v in notes]
    out += ["", *findings.markdown(result), "## Contact sheet", "", "![contact sheet](sheet.png)", ""]
    if terms:
        out += ["## Loss curves", ""]
        out += [f"![{TERMS[t]}](plots/loss-{t}.png)" for t in terms]
        out.append("")
    elif missing:
        out += ["## Loss curves", "", missing, ""]
    out += ["## Pictures", ""]
    out += [f"- [{v.name}](runs/{v.slug}.png)" + (f" ({state_text(v)})" if v.status != "done" else "")
            for v in result.variants if v.path]
    out += ["", "## Base settings", "", "```toml", "[base]", *toml_lines(exp.base.to_dict()), "```", ""]
    if _reproducible(result):
        out += ["## Reproduce", "", "```sh", command(result), "```", ""]
    return "\n".join(out)


# -- HTML ------------------------------------------------------------------------------------------------------------
CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 5px; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; vertical-align: bottom; } tr.base td { color: #777; font-style: italic; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } img.thumb { height: 56px; max-width: none; } figure { margin: 1em 0; }
td.name { min-width: 12em; } .wide { overflow-x: auto; max-width: 100%; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; } .muted { color: #777; }
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _thumb(v: VariantResult) -> str:
    if v.image is None:
        return ""
    im = v.image.copy()
    im.thumbnail((112, 112), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    w = max(1, round(56 * im.width / im.height))  # its size before it loads: the table is laid out once
    return (f'<img class="thumb" width="{w}" height="56" alt="{html.escape(v.name)}" '
            f'src="{_data_uri(buf.getvalue(), "image/png")}">')


def _breakable(text: str, after: str) -> str:
    """``text`` escaped, with a line-break opportunity after each of the characters ``after``: the variants table
    fits a 1280 px window (issue 28), and a wider one scrolls in its own box (``.wide``), never the page."""
    out = html.escape(text)
    for c in after:
        out = out.replace(c, c + "<wbr>")
    return out


def page(result: SweepResult, sheet_png: bytes, svgs: dict[str, bytes], missing: str = "") -> str:
    """The report as one HTML file with every image embedded (it can be mailed or uploaded as is)."""
    exp = result.experiment
    esc = html.escape
    header, table = rows(result)
    numeric = {*TERM_NAMES, "total", "steps", "time (s)", "batch", "peak MiB"}
    thumbs = {"(base)": ""} | {v.name: _thumb(v) for v in result.variants}
    title = exp.title or f"impasto sweep: {exp.name}"
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(title)}</title>", f"<style>{CSS}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    if exp.description:
        out.append(f"<p>{esc(exp.description.strip())}</p>")
    out.append(f"<p>{esc(_intro(result))}</p>")
    out += ["<h2>Variants</h2>", '<div class="wide"><table><thead><tr><th></th>']
    out += [f"<th>{_breakable(h, '_')}</th>" for h in header]  # content_<wbr>weight: narrow columns
    out.append("</tr></thead><tbody>")
    notes = {v.name: v.note for v in result.variants}
    for row in table:
        cls = ' class="base"' if row[0] == "(base)" else ""
        out.append(f"<tr{cls}><td>{thumbs.get(row[0], '')}</td>")
        for h, cell in zip(header, row):
            if h == "variant":
                note = f'<br><span class="muted">{esc(notes[cell])}</span>' if notes.get(cell) else ""
                out.append(f'<td class="name"><b>{esc(cell)}</b>{note}</td>')
            else:  # long values (layer tables, per-layer weights 0.5/0.4/…) may wrap after their commas and slashes
                out.append(f'<td{" class=num" if h in numeric else ""}>{_breakable(cell, ",/")}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    out.append("<ul class=muted>" + "".join(f"<li>{esc(n)}</li>" for n in _notes(result)) + "</ul>")
    out += findings.page(result)
    out += ["<h2>Contact sheet</h2>",
            f'<figure><img alt="contact sheet" src="{_data_uri(sheet_png, "image/png")}"></figure>']
    if svgs:
        out.append("<h2>Loss curves</h2>")
        out += [f'<figure><img alt="{esc(TERMS[t])}" src="{_data_uri(svg, "image/svg+xml")}"></figure>'
                for t, svg in svgs.items()]
    elif missing:
        out += ["<h2>Loss curves</h2>", f'<p class="muted">{esc(missing)}</p>']
    out += ["<h2>Base settings</h2>", "<pre>" + esc("\n".join(["[base]", *toml_lines(exp.base.to_dict())])) + "</pre>"]
    if _reproducible(result):
        out += ["<h2>Reproduce</h2>", f"<pre>{esc(command(result))}</pre>"]
    out += ["</body></html>", ""]
    return "\n".join(out)
