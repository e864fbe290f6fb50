"""
Colour preservation
===================

``preserve_color`` keeps the photo's colours while the painting gives the strokes: ``luminance`` transfers on
luminance only, ``histogram`` gives the painting the photo's colour statistics first, and ``palette`` puts the
photo's colour layout into the painting's palette (NNST's finish, the ``neighbour`` preset's default).
"""

# %%
from PIL import Image, ImageDraw

import impasto
from impasto.samples import sample_content, sample_style

photo, painting = sample_content(), sample_style()


def side_by_side(pictures: dict[str, Image.Image], height: int = 128) -> Image.Image:
    """The pictures in a row, each scaled to ``height`` and labelled under it."""
    scaled = [p.resize((round(p.width * height / p.height), height)) for p in pictures.values()]
    sheet = Image.new("RGB", (sum(p.width for p in scaled) + 8 * (len(scaled) - 1), height + 16), "white")
    x = 0
    for (label, _), p in zip(pictures.items(), scaled):
        sheet.paste(p, (x, 0))
        ImageDraw.Draw(sheet).text((x + 2, height + 3), label, fill="black")
        x += p.width + 8
    return sheet


# %%
modes = ["none", "luminance", "histogram", "palette"]
results = {m: impasto.stylize(photo, painting, size=128, steps=40, preserve_color=m, progress=False) for m in modes}
side_by_side({f"preserve_color {m}": r.image for m, r in results.items()}).save("colour.png")
