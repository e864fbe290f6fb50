"""The contact sheet: the inputs, then every variant's picture labelled with what it changed and what it scored.

Drawn with Pillow alone (no matplotlib), so that it can be redrawn cheaply while a sweep runs.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from ..io.images import LoadedImage
from .results import SweepResult, VariantResult
from .spec import describe_value

MARGIN = 16
GAP = 14
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GREY = (110, 110, 110)
ACCENT = (170, 40, 30)
PLACEHOLDER = (232, 232, 232)
HEADER_H = 30 + 22  # the title's line, then the subtitle's
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Row = tuple[str, Font, tuple[int, int, int]]  # a label line: text, font, colour


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled TrueType font (needs FreeType)
    except (TypeError, OSError, AttributeError):
        return ImageFont.load_default()


def _fit(im: Image.Image, box: int) -> Image.Image:
    s = box / max(im.size)
    size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels; a word longer than a line is cut."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split(" "):
            trial = f"{line} {word}".strip()
            if draw.textlength(trial, font=font) <= width:
                line = trial
                continue
            if line:
                lines.append(line)
            while draw.textlength(word, font=font) > width and len(word) > 1:
                n = max(1, int(len(word) * width / draw.textlength(word, font=font)) - 1)
                lines.append(word[:n])
                word = word[n:]
            line = word
        lines.append(line)
    return lines


def state_text(rec: VariantResult) -> str:
    if rec.status == "done":
        return f"{rec.elapsed:.1f} s" + (f" · batch of {rec.batch_size}" if rec.batch_size > 1 else "")
    if rec.status == "queued":
        return "queued"
    if rec.status == "running":
        return f"running: step {rec.steps_done}/{rec.total_steps}"
    if rec.status == "cancelled":
        return f"interrupted at step {rec.steps_done}/{rec.total_steps} (rerun to continue)"
    return f"{rec.status} at step {rec.steps_done} ({rec.elapsed:.1f} s)"


def change_lines(rec: VariantResult, base: dict) -> list[str]:
    """``key = value`` for each setting that differs from the base (style layer weights as w1/w2/...)."""
    return [f"{k} = {describe_value(k, v, base.get(k))}" for k, v in rec.changes.items()] or ["(the base settings)"]


def loss_text(rec: VariantResult) -> str:
    losses = rec.losses
    if not losses:
        return ""
    return f"content {losses.get('content', 0):.3g} · style {losses.get('style', 0):.3g}"


def render_sheet(result: SweepResult, *, columns: int | None = None) -> Image.Image:
    """Inputs on the first row, then every variant in file order; labels under each picture."""
    variants = result.variants
    n = len(variants)
    cols = columns or min(n, 4 if n <= 16 else math.ceil(math.sqrt(n)))
    first = next((v.image for v in variants if v.image is not None), result.content.image)
    cell = max(200, min(320, max(first.size)))
    fonts = _fonts()
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    base = result.experiment.base.to_dict()

    # Labels first, so that every row has the same height (the tallest label).
    labels = [_label_rows(scratch, v, base, fonts.text, cell) for v in variants]
    label_h = fonts.name_h + fonts.line_h * max((len(rows) for rows in labels), default=0) + 6

    inputs = _inputs(result)
    title, subtitle = _headings(result)
    in_cols = max(cols, len(inputs))
    width = MARGIN * 2 + in_cols * cell + (in_cols - 1) * GAP
    width = max(width, int(scratch.textlength(title, font=fonts.title)) + 2 * MARGIN)
    in_label_h = fonts.line_h * 2 + 4
    rows_n = math.ceil(n / cols) if n else 0
    height = MARGIN + HEADER_H + cell + in_label_h + GAP * 2 + rows_n * (cell + label_h + GAP) + MARGIN

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(sheet)
    d.text((MARGIN, MARGIN), title, font=fonts.title, fill=INK)
    d.text((MARGIN, MARGIN + 30), subtitle, font=fonts.text, fill=GREY)
    y = MARGIN + HEADER_H
    _draw_inputs(sheet, d, inputs, y, cell, fonts, blended=len(result.styles) > 1)
    y += cell + in_label_h + GAP
    d.line([(MARGIN, y), (width - MARGIN, y)], fill=PLACEHOLDER, width=2)
    y += GAP
    for i, (v, rows) in enumerate(zip(variants, labels)):
        x = MARGIN + (i % cols) * (cell + GAP)
        top = y + (i // cols) * (cell + label_h + GAP)
        _draw_variant(sheet, d, v, rows, x, top, cell, fonts)
    return sheet


@dataclass(frozen=True)
class _Fonts:
    """The sheet's three fonts and the line heights that follow from them."""

    title: Font
    name: Font
    text: Font
    line_h: int  # a label line (text)
    name_h: int  # a variant's name line


def _fonts() -> _Fonts:
    title_f, name_f, text_f = _font(22), _font(16), _font(13)
    line_h = int(text_f.size * 1.35) if hasattr(text_f, "size") else 14
    name_h = int(getattr(name_f, "size", 14) * 1.45)
    return _Fonts(title_f, name_f, text_f, line_h, name_h)


def _label_rows(draw: ImageDraw.ImageDraw, rec: VariantResult, base: dict, font: Font, width: int) -> list[Row]:
    """The lines under a variant's picture: its changes, its note (three lines at most), its losses, its state."""
    rows: list[Row] = []
    for line in change_lines(rec, base):
        rows += [(s, font, INK) for s in _wrap(draw, line, font, width)]
    if rec.note:
        rows += [(s, font, GREY) for s in _wrap(draw, rec.note, font, width)[:3]]
    if loss_text(rec):
        rows += [(s, font, INK) for s in _wrap(draw, loss_text(rec), font, width)]
    colour = ACCENT if rec.status in ("diverged", "cancelled", "failed") else GREY
    rows += [(s, font, colour) for s in _wrap(draw, state_text(rec), font, width)]
    return rows


def _inputs(result: SweepResult) -> list[tuple[str, LoadedImage]]:
    """The first row's pictures, each with its caption's lead word: content, then the style(s)."""
    several = len(result.styles) > 1
    return [("content", result.content)] + [
        (f"style {i + 1}" if several else "style", s) for i, s in enumerate(result.styles)]


def _headings(result: SweepResult) -> tuple[str, str]:
    """The sheet's title and the subtitle that sums up the base settings and the sweep's status."""
    exp = result.experiment
    c0 = exp.base
    title = exp.title or f"impasto sweep: {exp.name}"
    subtitle = (f"{len(result.variants)} variants · {c0.optimizer} lr {c0.lr:g} · {c0.steps} steps · {c0.size} px · "
                f"{c0.loss_norm} losses · {result.status}")
    return title, subtitle


def _paste_centred(sheet: Image.Image, im: Image.Image, x: int, y: int, cell: int) -> None:
    thumb = _fit(im, cell)
    sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))


def _draw_inputs(sheet: Image.Image, draw: ImageDraw.ImageDraw, inputs: list[tuple[str, LoadedImage]], y: int,
                 cell: int, fonts: _Fonts, *, blended: bool) -> None:
    """The content and style pictures in one row, each captioned with its file name (two lines at most)."""
    for i, (what, img) in enumerate(inputs):
        x = MARGIN + i * (cell + GAP)
        _paste_centred(sheet, img.image, x, y, cell)
        blend = " (weights per variant: style_blend)" if blended and what != "content" else ""
        caption = _wrap(draw, f"{what}: {_short_name(img.name)}{blend}", fonts.text, cell)[:2]
        for k, line in enumerate(caption):
            draw.text((x, y + cell + 4 + k * fonts.line_h), line, font=fonts.text, fill=GREY)


def _draw_variant(sheet: Image.Image, draw: ImageDraw.ImageDraw, rec: VariantResult, rows: list[Row], x: int,
                  top: int, cell: int, fonts: _Fonts) -> None:
    """One variant's cell: its picture (or a grey square naming its status), its name, then its label rows."""
    if rec.image is not None:
        _paste_centred(sheet, rec.image, x, top, cell)
    else:
        draw.rectangle([x, top, x + cell - 1, top + cell - 1], fill=PLACEHOLDER)
        draw.text((x + cell // 2, top + cell // 2), rec.status, font=fonts.name, fill=GREY, anchor="mm")
    ty = top + cell + 4
    draw.text((x, ty), _wrap(draw, rec.name, fonts.name, cell)[0], font=fonts.name, fill=INK)
    ty += fonts.name_h
    for text, font, colour in rows:
        draw.text((x, ty), text, font=font, fill=colour)
        ty += fonts.line_h


def _short_name(name: str) -> str:
    tail = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return textwrap.shorten(tail, 60, placeholder="…")
