"""The contact sheet: the inputs, then every variant's picture labelled with what it changed and what it scored.

Drawn with Pillow alone (no matplotlib), so that it can be redrawn cheaply while a sweep runs.
"""

from __future__ import annotations

import math
import textwrap

from PIL import Image, ImageDraw, ImageFont

from .results import SweepResult, VariantResult
from .spec import describe_value

MARGIN = 16
GAP = 14
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
GREY = (110, 110, 110)
ACCENT = (170, 40, 30)
PLACEHOLDER = (232, 232, 232)
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


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
    title_f, name_f, text_f = _font(22), _font(16), _font(13)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = int(text_f.size * 1.35) if hasattr(text_f, "size") else 14
    name_h = int(getattr(name_f, "size", 14) * 1.45)
    base = result.experiment.base.to_dict()

    # Labels first, so that every row has the same height (the tallest label).
    labels: list[list[tuple[str, Font, tuple[int, int, int]]]] = []
    for v in variants:
        rows: list[tuple[str, Font, tuple[int, int, int]]] = []
        for line in change_lines(v, base):
            rows += [(s, text_f, INK) for s in _wrap(scratch, line, text_f, cell)]
        if v.note:
            rows += [(s, text_f, GREY) for s in _wrap(scratch, v.note, text_f, cell)[:3]]
        if loss_text(v):
            rows += [(s, text_f, INK) for s in _wrap(scratch, loss_text(v), text_f, cell)]
        colour = ACCENT if v.status in ("diverged", "cancelled", "failed") else GREY
        rows += [(s, text_f, colour) for s in _wrap(scratch, state_text(v), text_f, cell)]
        labels.append(rows)
    label_h = name_h + line_h * max((len(rows) for rows in labels), default=0) + 6

    inputs = [("content", result.content)] + [
        (f"style {i + 1}" if len(result.styles) > 1 else "style", s) for i, s in enumerate(result.styles)]
    exp = result.experiment
    title = exp.title or f"impasto sweep: {exp.name}"
    c0 = exp.base
    subtitle = (f"{n} variants · {c0.optimizer} lr {c0.lr:g} · {c0.steps} steps · {c0.size} px · "
                f"{c0.loss_norm} losses · {result.status}")
    in_cols = max(cols, len(inputs))
    width = MARGIN * 2 + max(cols, in_cols) * cell + (max(cols, in_cols) - 1) * GAP
    width = max(width, int(scratch.textlength(title, font=title_f)) + 2 * MARGIN)
    header_h = 30 + 22
    in_label_h = line_h * 2 + 4
    rows_n = math.ceil(n / cols) if n else 0
    height = MARGIN + header_h + cell + in_label_h + GAP * 2 + rows_n * (cell + label_h + GAP) + MARGIN

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(sheet)
    y = MARGIN
    d.text((MARGIN, y), title, font=title_f, fill=INK)
    d.text((MARGIN, y + 30), subtitle, font=text_f, fill=GREY)
    y += header_h

    for i, (what, img) in enumerate(inputs):
        x = MARGIN + i * (cell + GAP)
        thumb = _fit(img.image, cell)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        blend = ""
        if len(result.styles) > 1 and what != "content":
            blend = " (weights per variant: style_blend)"
        caption = _wrap(d, f"{what}: {_short_name(img.name)}{blend}", text_f, cell)[:2]
        for k, line in enumerate(caption):
            d.text((x, y + cell + 4 + k * line_h), line, font=text_f, fill=GREY)
    y += cell + in_label_h + GAP
    d.line([(MARGIN, y), (width - MARGIN, y)], fill=PLACEHOLDER, width=2)
    y += GAP

    for i, (v, rows) in enumerate(zip(variants, labels)):
        x = MARGIN + (i % cols) * (cell + GAP)
        top = y + (i // cols) * (cell + label_h + GAP)
        if v.image is not None:
            thumb = _fit(v.image, cell)
            sheet.paste(thumb, (x + (cell - thumb.width) // 2, top + (cell - thumb.height) // 2))
        else:
            d.rectangle([x, top, x + cell - 1, top + cell - 1], fill=PLACEHOLDER)
            d.text((x + cell // 2, top + cell // 2), v.status, font=name_f, fill=GREY, anchor="mm")
        ty = top + cell + 4
        name = _wrap(d, v.name, name_f, cell)[0]
        d.text((x, ty), name, font=name_f, fill=INK)
        ty += name_h
        for text, font, colour in rows:
            d.text((x, ty), text, font=font, fill=colour)
            ty += line_h
    return sheet


def _short_name(name: str) -> str:
    tail = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return textwrap.shorten(tail, 60, placeholder="…")
