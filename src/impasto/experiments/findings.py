"""The findings table: each variant's change against the baseline on the quality meter, beside what was claimed.

Asked for by an experiment's ``[findings]`` table (claims.py reads it). Every finished variant is measured with one
meter (``impasto.api.Meter``: bundled VGG19, every picture at the same long side, whatever network or size made it):
its style distance to its *own* style target (the blend of the style images' Grams with its ``style_blend``), the
same without relu5_1 (style14), its content distance to the photo and its colour distance (ΔE) to the blend's
pixels. Each claim's checks (claims.WORDS) are then judged: a claim is *borne out* when every check holds.

Measurements are kept on the SweepResult (by picture), so the report's redraws during a sweep measure each picture
once; unfinished variants wait.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..api import Distances, Meter
from ..errors import ImpastoError
from .claims import MEASURES, Claim, FindingsSpec, other_variant
from .results import SweepResult, VariantResult

BORNE_OUT, NOT_BORNE_OUT, NOT_MEASURED, NOT_CHECKED = "borne out", "not borne out", "not measured", "not checked"


@dataclass(frozen=True)
class Measured:
    """One variant on the meter, with what its checks need."""

    name: str
    baseline: str  # the variant it is compared with (the baseline at its grid point; itself for the baseline)
    blend: tuple[float, ...]  # the style weights its target used, normalised to sum 1
    distances: Distances | None  # None: not finished (or the meter could not run)
    pixel_diff: float | None  # mean |Δ| from the baseline's picture, 0-1 RGB at the meter's size
    rises: float | None  # share of steps at which its total loss rose
    total: float | None  # impasto's final total loss
    totals_at: tuple[tuple[int, float], ...] = ()  # impasto's totals at the steps the study printed its own
    report_losses: tuple[float, ...] = ()


@dataclass(frozen=True)
class Check:
    word: str
    holds: bool | None  # None: not measured yet
    evidence: str


@dataclass(frozen=True)
class Verdict:
    variant: str
    claim: Claim
    checks: tuple[Check, ...]

    @property
    def verdict(self) -> str:
        if not self.checks:
            return NOT_CHECKED
        if any(c.holds is False for c in self.checks):
            return NOT_BORNE_OUT
        return BORNE_OUT if all(c.holds for c in self.checks) else NOT_MEASURED


@dataclass(frozen=True)
class Findings:
    spec: FindingsSpec
    rows: tuple[Measured, ...]
    verdicts: tuple[Verdict, ...]
    styles: tuple[str, ...]  # the style images' names, for the blends
    error: str = ""  # why the meter could not run, if it could not


def study_findings(result: SweepResult) -> Findings | None:
    """The sweep's findings as they stand (None when its experiment has no [findings] table)."""
    spec = result.experiment.findings
    if spec is None:
        return None
    origin = {v.name: (v.origin, v.point) for v in result.experiment.variants}
    by_name = {v.name: v for v in result.variants}
    partner = {(origin[v.name][0], origin[v.name][1]): v for v in result.variants if v.name in origin}
    error = ""
    meter: Meter | None = None
    if any(_ready(v) for v in result.variants):
        try:
            meter = _meter(result, spec)
        except ImpastoError as e:
            error = str(e)
    rows = {}
    for v in result.variants:
        where = origin.get(v.name, ("", ""))
        base = partner.get((spec.baseline, where[1]))
        rows[v.name] = _row(result, meter, spec, v, base, spec.report_losses.get(where[0], ()))
    verdicts = []
    for v in result.variants:
        where = origin.get(v.name, ("", ""))
        for claim in spec.claims.get(where[0], ()):
            checks = []
            for word in claim.expect:
                other = other_variant(word)
                against = partner.get((other, where[1])) if other else by_name.get(rows[v.name].baseline)
                checks.append(_judge(word, result, meter, spec, rows[v.name], v, against,
                                     rows.get(against.name) if against else None))
            verdicts.append(Verdict(v.name, claim, tuple(checks)))
    return Findings(spec, tuple(rows.values()), tuple(verdicts), tuple(Path(s.name).name for s in result.styles),
                    error)


# -- measuring ---------------------------------------------------------------------------------------------------------
def _ready(v: VariantResult) -> bool:
    return v.finished and v.image is not None


def _digest(v: VariantResult) -> str:
    assert v.image is not None
    return hashlib.sha256(f"{v.image.size}".encode() + v.image.tobytes()).hexdigest()


def _meter(result: SweepResult, spec: FindingsSpec) -> Meter:
    key = ("meter", spec.meter_size)
    if key not in result.cache:
        result.cache[key] = Meter(result.content.image, [s.image for s in result.styles], size=spec.meter_size)
    return result.cache[key]


def _blend(v: VariantResult, n: int) -> tuple[float, ...]:
    w = list(v.config.style_blend) if v.config.style_blend is not None else [1.0] * n
    return tuple(x / sum(w) for x in w)


def _cached(result: SweepResult, key: tuple[Any, ...], make: Any) -> Any:
    if key not in result.cache:
        result.cache[key] = make()
    return result.cache[key]


def _distances(result: SweepResult, meter: Meter | None, v: VariantResult) -> Distances | None:
    if meter is None or not _ready(v):
        return None
    blend = _blend(v, len(result.styles))
    return _cached(result, ("distances", meter.size, _digest(v), blend), lambda: meter(v.image, blend))


def _pixels(result: SweepResult, meter: Meter, v: VariantResult) -> np.ndarray:
    return _cached(result, ("pixels", meter.size, _digest(v)),
                   lambda: np.asarray(meter.pixels(v.image), dtype=np.float64) / 255.0)


def pixel_difference(result: SweepResult, meter: Meter | None, a: VariantResult | None,
                     b: VariantResult | None) -> float | None:
    """Mean absolute difference of two variants' pictures (0-1 RGB, both at the meter's size)."""
    if meter is None or a is None or b is None or not (_ready(a) and _ready(b)):
        return None
    return float(np.abs(_pixels(result, meter, a) - _pixels(result, meter, b)).mean())


def rises(history: Sequence[dict[str, float]]) -> float | None:
    """The share of steps at which the total loss rose above the step before's (scale changes left out)."""
    pairs = [(a["total"], b["total"]) for a, b in zip(history, history[1:])
             if a.get("scale") == b.get("scale") and "total" in a and "total" in b]
    return sum(b > a for a, b in pairs) / len(pairs) if pairs else None


def _row(result: SweepResult, meter: Meter | None, spec: FindingsSpec, v: VariantResult, base: VariantResult | None,
         report_losses: tuple[float, ...]) -> Measured:
    total = v.losses.get("total") if v.finished else None
    every = spec.report_every
    at = tuple((int(h["step"]), h["total"]) for h in v.history if every and int(h["step"]) % every == 0
               and "total" in h) if v.finished else ()
    return Measured(v.name, base.name if base is not None else "", _blend(v, len(result.styles)),
                    _distances(result, meter, v), pixel_difference(result, meter, v, base) if base is not v else 0.0,
                    rises(v.history) if v.finished else None, total, at, report_losses)


# -- judging -----------------------------------------------------------------------------------------------------------
def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _compare(word: str, mine: float | None, theirs: float | None, label: str, spec: FindingsSpec,
             fmt: str = ".3g") -> Check:
    if mine is None or theirs is None:
        return Check(word, None, f"{label}: waiting for both pictures")
    lower = word.split("-")[0] in ("more", "lower", "steadier")
    holds = mine < theirs * (1 - spec.margin) if lower else mine > theirs * (1 + spec.margin)
    return Check(word, holds, f"{label} {mine:{fmt}} vs {theirs:{fmt}}, {_ratio(mine, theirs)}")


def _judge(word: str, result: SweepResult, meter: Meter | None, spec: FindingsSpec, row: Measured, v: VariantResult,
           other: VariantResult | None, other_row: Measured | None) -> Check:
    head = word.partition(":")[0]
    measure = word.partition("-")[2]
    if measure in MEASURES:
        mine = getattr(row.distances, measure) if row.distances else None
        theirs = getattr(other_row.distances, measure) if other_row and other_row.distances else None
        return _compare(word, mine, theirs, measure, spec, ".1f" if measure == "colour" else ".3g")
    if word in ("lower-loss", "higher-loss"):
        return _compare(word, row.total, other_row.total if other_row else None, "total loss", spec)
    if word == "steadier":
        return _compare(word, row.rises, other_row.rises if other_row else None, "share of steps the loss rose", spec)
    diff = pixel_difference(result, meter, v, other)
    if diff is None:
        return Check(word, None, "pixel difference: waiting for both pictures")
    differs = diff > spec.differs
    target = f" from {other.name}" if other is not None and head in ("differs-from", "similar-to") else ""
    return Check(word, differs if head.startswith("differs") else not differs,
                 f"mean pixel difference{target} {diff:.4f} {'>' if differs else '≤'} {spec.differs:g}")


# -- the tables --------------------------------------------------------------------------------------------------------
def _blend_text(blend: tuple[float, ...], styles: tuple[str, ...]) -> str:
    used = [(w, s) for w, s in zip(blend, styles) if w > 0]
    return used[0][1] if len(used) == 1 else " + ".join(f"{w:.2g} {s}" for w, s in used)


def _cell(row: Measured, base: Measured | None, measure: str) -> str:
    if row.distances is None:
        return ""
    x = getattr(row.distances, measure)
    text = f"{x:.1f}" if measure == "colour" else f"{x:.3f}"
    if base is not None and base is not row and base.distances is not None:
        text += f" ({_ratio(x, getattr(base.distances, measure))})"
    return text


def _loss(x: float) -> str:
    return f"{x:.0f}" if 1e4 <= abs(x) < 1e15 else f"{x:.4g}"  # the report printed 15159387.0, not 1.516e+07


def _losses(xs: Sequence[float]) -> str:
    return " → ".join(map(_loss, xs))


def tables(f: Findings, result: SweepResult) -> list[tuple[str, list[str], list[list[str]]]]:
    """The findings as (title, header, rows) tables: the measures, the claims, and the losses printed."""
    rows = {r.name: r for r in f.rows}
    status = {v.name: v.status for v in result.variants}
    measured = []
    for r in f.rows:
        base = rows.get(r.baseline)
        is_base = r.baseline == r.name
        measured.append([r.name + (" (baseline)" if is_base else ""), "" if is_base else r.baseline,
                         _blend_text(r.blend, f.styles), *[_cell(r, base, m) for m in MEASURES],
                         "" if r.pixel_diff is None or is_base else f"{r.pixel_diff:.4f}",
                         "" if r.rises is None else f"{r.rises:.0%}", status.get(r.name, "")])
    out = [("Measured", ["variant", "against", "style target (blend)", "style", "style14", "content", "colour (ΔE)",
                         "pixel diff", "loss rose at", "status"], measured)]
    if f.verdicts:
        claims = [[v.variant, v.claim.text, v.claim.by, "; ".join(
            f"{c.word} {'✓' if c.holds else '✗' if c.holds is False else '…'} ({c.evidence})" for c in v.checks),
            v.verdict] for v in f.verdicts]
        out.append(("Claims", ["variant", "claim", "by", "checks", "verdict"], claims))
    if any(r.report_losses or r.totals_at for r in f.rows):
        every = f.spec.report_every
        losses = [[r.name, _losses(r.report_losses), _losses([t for _, t in r.totals_at]),
                   "" if r.total is None else _loss(r.total)] for r in f.rows if r.report_losses or r.totals_at]
        out.append(("Losses printed", ["variant", "the study printed (total)",
                                       f"impasto every {every} steps" if every else "impasto at those steps",
                                       "impasto's final total"], losses))
    return out


def notes(f: Findings, result: SweepResult) -> list[str]:
    s, c0 = f.spec, result.experiment.base
    out = [
        (f"The meter (impasto.api.Meter): bundled VGG19, every picture resized to a long side of {s.meter_size} px. "
         "style = mean over relu1_1-relu5_1 of |G(out) - G*|/|G*| (G = FF^T/HW) against the variant's own style "
         "target G* (its blend of the style images' Grams, named in the table); style14 = the same over relu1_1-"
         "relu4_1; content = |F(out) - F(photo)|/|F(photo)| at relu4_2; colour = sliced Wasserstein distance in "
         "CIELAB (ΔE) to the blend's pixels. Lower is closer; (0.74x) is the ratio to the baseline's figure."),
        (f"Thresholds: a distance, loss or share of rising steps counts as lower or higher when it moves by more "
         f"than {s.margin:.0%} of the baseline's; two pictures differ when their mean absolute pixel difference "
         f"(0-1 RGB, at the meter's size) is above {s.differs:g}, and are similar otherwise. A claim is borne out "
         "when every check holds."),
    ]
    if any(r.report_losses for r in f.rows):
        out.append(f"impasto's totals are in the {c0.loss_norm!r} convention on the {c0.weights!r} network; the "
                   "study's were the classic exercise's units on torchvision's VGG19, so the two compare only with "
                   "weights = \"torchvision\" and loss_norm = \"classic\".")
    if f.error:
        out.append(f"The meter could not run: {f.error}")
    return out


def markdown(result: SweepResult) -> list[str]:
    f = study_findings(result)
    if f is None:
        return []
    out = ["## Findings", ""]
    for title, header, rows in tables(f, result):
        out += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(f"**{c}**" if h == "verdict" else c.replace("|", "\\|") for h, c in zip(header, row))
                + " |" for row in rows]
        out.append("")
    return out + [f"- {n}" for n in notes(f, result)] + [""]


def page(result: SweepResult) -> list[str]:
    f = study_findings(result)
    if f is None:
        return []
    esc = html.escape
    out = ["<h2>Findings</h2>"]
    for title, header, rows in tables(f, result):
        out += [f"<h3>{esc(title)}</h3>", '<div class="wide"><table><thead><tr>',
                *[f"<th>{esc(h)}</th>" for h in header], "</tr></thead><tbody>"]
        for row in rows:
            out.append("<tr>" + "".join(f"<td><b>{esc(c)}</b></td>" if h == "verdict" else f"<td>{esc(c)}</td>"
                                        for h, c in zip(header, row)) + "</tr>")
        out.append("</tbody></table></div>")
    return out + ["<ul class=muted>" + "".join(f"<li>{esc(n)}</li>" for n in notes(f, result)) + "</ul>"]


def manifest(result: SweepResult) -> dict[str, Any] | None:
    """The findings for sweep.json: the thresholds, every variant's measures and every claim's checks."""
    f = study_findings(result)
    if f is None:
        return None
    s = f.spec
    return {
        "baseline": s.baseline, "margin": s.margin, "differs": s.differs, "meter_size": s.meter_size,
        "report_every": s.report_every, "error": f.error or None,
        "variants": [{"name": r.name, "baseline": r.baseline, "blend": list(r.blend),
                      "distances": r.distances.as_dict() if r.distances else None, "pixel_diff": r.pixel_diff,
                      "loss_rises": r.rises, "total": r.total, "totals_at": [list(t) for t in r.totals_at],
                      "report_losses": list(r.report_losses)} for r in f.rows],
        "claims": [{"variant": v.variant, "claim": v.claim.text, "by": v.claim.by, "verdict": v.verdict,
                    "checks": [{"word": c.word, "holds": c.holds, "evidence": c.evidence} for c in v.checks]}
                   for v in f.verdicts],
    }
