"""A batch job's summary sheet: content images down the left, styles across the top, each pair where they meet.

Drawn with Pillow from thumbnails the job keeps (a rerun reads each existing picture once), so that redrawing it
after every group of contents stays cheap however many pictures the folder holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from .sheet import ACCENT, BACKGROUND, GAP, GREY, INK, MARGIN, PLACEHOLDER, _fit, _font, _wrap

if TYPE_CHECKING:
    from .batch_job import BatchJob

THUMB = 160  # px, the long side of a cell; smaller for a long job
MAX_ROWS = 400  # contents drawn; the sheet says how many more there are


def cell_size(rows: int) -> int:
    return THUMB if rows <= 40 else 96


def render_batch_sheet(job: BatchJob, contents: Mapping[str, Image.Image | None], styles: Sequence[Image.Image],
                       pictures: Mapping[str, Image.Image | None]) -> Image.Image:
    """``contents``: a thumbnail per content source; ``styles``: one per style; ``pictures``: one per pair name."""
    rows = min(len(job.contents), MAX_ROWS)
    cols = 1 if job.blend else len(job.styles)
    cell = cell_size(rows)
    title_f, text_f = _font(20), _font(12)
    line_h = int(getattr(text_f, "size", 12) * 1.35)
    label_h = line_h * 2 + 4
    header = 30 + line_h + GAP
    n_c, n_s = len(job.contents), len(job.styles)
    title = (f"impasto batch: {n_c} content image{'s' * (n_c != 1)}, {n_s} style{'s' * (n_s != 1)}"
             + (" blended" if job.blend else ""))
    width = max(MARGIN * 2 + (cols + 1) * (cell + GAP),
                int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=title_f)) + 2 * MARGIN)
    height = MARGIN * 2 + header + (rows + 1) * (cell + label_h + GAP) + (line_h if rows < len(job.contents) else 0)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(sheet)
    done = sum(p.status in ("done", "diverged") for p in job.pairs)
    d.text((MARGIN, MARGIN), title, font=title_f, fill=INK)
    d.text((MARGIN, MARGIN + 28), f"{done}/{len(job.pairs)} pictures · {job.status}", font=text_f, fill=GREY)
    y0 = MARGIN + header

    def put(im: Image.Image | None, x: int, y: int, caption: str, colour: tuple[int, int, int] = GREY,
            empty: str = "") -> None:
        if im is not None:
            thumb = _fit(im, cell)
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        else:
            d.rectangle([x, y, x + cell - 1, y + cell - 1], fill=PLACEHOLDER)
            d.text((x + cell // 2, y + cell // 2), empty, font=text_f, fill=GREY, anchor="mm")
        for k, line in enumerate(_wrap(d, caption, text_f, cell)[:2]):
            d.text((x, y + cell + 2 + k * line_h), line, font=text_f, fill=colour)

    x0 = MARGIN + cell + GAP
    if job.blend:
        put(None, x0, y0, "blend of " + " + ".join(_name(s) for s in job.styles), empty="blend")
    else:
        for k, s in enumerate(job.styles):
            put(styles[k] if k < len(styles) else None, x0 + k * (cell + GAP), y0, _name(s))
    by_cell = {(p.row, p.column): p for p in job.pairs}
    for r, c in enumerate(job.contents[:rows]):
        y = y0 + (r + 1) * (cell + label_h + GAP)
        put(contents.get(c), MARGIN, y, _name(c))
        for k in range(cols):
            p = by_cell.get((r, k))
            if p is None:
                continue
            note = "" if p.status == "done" else f" · {p.status}"
            colour = ACCENT if p.status in ("failed", "diverged", "cancelled") else GREY
            caption = "already there" if p.skipped else f"{p.elapsed:.0f} s{note}" if p.elapsed else p.status
            put(pictures.get(p.name), x0 + k * (cell + GAP), y, caption, colour, empty=p.status)
    if rows < len(job.contents):
        d.text((MARGIN, height - MARGIN - line_h), f"… and {len(job.contents) - rows} more content images "
               "(see batch.json)", font=text_f, fill=GREY)
    return sheet


def _name(source: str) -> str:
    return source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
