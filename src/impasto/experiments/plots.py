"""Loss curves: one figure per loss term, one line per variant, log scale; PNG and SVG.

matplotlib is an optional extra (``pip install 'impasto[sweep]'``), imported only here and only when needed; without
it a sweep still runs and its report says what to install. The figures are drawn on an explicit Agg canvas, never
through pyplot, so a notebook's own backend is left alone.
"""

from __future__ import annotations

import io
import itertools
import math
from typing import Any

from ..api import LOSS_DESCRIPTIONS
from ..errors import ImpastoError
from .results import VariantResult

TERMS = LOSS_DESCRIPTIONS  # "total" and every term of the objective, from the engine's one list
LINESTYLES = ("-", "--", "-.", ":")
MAX_POINTS = 800  # per line: enough for the eye, and the SVG stays small


class MissingExtra(ImpastoError, ImportError):
    """An optional dependency is not installed: the message says what to install."""

    exit_code = 2


NO_MATPLOTLIB = "No loss plots: they need matplotlib, which is not installed (pip install 'impasto[sweep]')."


def have_matplotlib() -> bool:
    """Whether the plots can be drawn. A sweep runs without matplotlib: only its plots are left out."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra("loss plots need matplotlib: pip install 'impasto[sweep]'") from None
    return matplotlib


def plot_terms(variants: list[VariantResult]) -> list[str]:
    """The terms worth a plot: those with a positive value somewhere (tv is 0 unless a variant uses it)."""
    return [t for t in TERMS if any(h.get(t, 0) > 0 for v in variants for h in v.history)]


def render_plot(term: str, variants: list[VariantResult], *, title: str = "") -> tuple[bytes, bytes]:
    """One term's curves → (PNG bytes, SVG bytes)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.6), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = _colours(len(variants))
    drawn = 0
    floor = math.inf
    for i, v in enumerate(variants):
        points = [(h["step"], h[term]) for h in v.history if h.get(term, 0) > 0 and math.isfinite(h[term])]
        if not points:
            continue
        if len(points) > MAX_POINTS:
            k = math.ceil(len(points) / MAX_POINTS)
            points = points[::k] + ([points[-1]] if (len(points) - 1) % k else [])
        xs, ys = zip(*points)
        floor = min(floor, *ys[1:]) if len(ys) > 1 else min(floor, ys[0])
        # Variants often coincide (a setting that changes nothing): dashes and widths that shrink down the list
        # let the lines underneath show through.
        ax.plot(xs, ys, LINESTYLES[i % len(LINESTYLES)], color=colours[i % len(colours)],
                linewidth=max(1.0, 2.6 - 0.2 * i), label=v.name)
        drawn += 1
    if math.isfinite(floor):
        # The first step's content loss is ~0 when the image starts as the content (init = content): let it fall
        # below the axis rather than stretch the log scale over ten empty decades.
        ax.set_ylim(bottom=floor / 2)
    first = next((v.history for v in variants if v.history), [])
    for prev, cur in itertools.pairwise(first):  # coarse-to-fine: mark where each finer scale starts
        if cur.get("scale", 0) != prev.get("scale", 0):
            ax.axvline(cur["step"], color="0.8", linewidth=0.8, zorder=0)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(TERMS[term])
    ax.set_title(f"{title}: {TERMS[term]}" if title else TERMS[term], fontsize=11)
    ax.grid(True, which="major", color="0.9")
    if drawn:
        if drawn <= 10:
            ax.legend(fontsize=8, frameon=False)
        else:
            ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=2 if drawn > 24 else 1)
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png")
    fig.savefig(svg, format="svg", metadata={"Date": None})  # no timestamp: the same sweep gives the same file
    return png.getvalue(), svg.getvalue()


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    return list(colormaps["tab10"].colors if n <= 10 else colormaps["tab20"].colors)  # type: ignore[attr-defined]
