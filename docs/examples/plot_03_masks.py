"""
Masks: a style per region, the photo kept
=========================================

Two paintings, one for the sky and one for the land, and a keep mask over the house: no style goes there and the
photo is composited back through the feathered mask at the end (Gatys et al. 2017, spatial control). The masks are
PIL images here; files work the same (``masks=["sky.png", "land.png"]``, ``--masks sky.png land.png``).
"""

# %%
from PIL import Image, ImageDraw
# sphinx_gallery_thumbnail_number = 2

import impasto
from impasto.samples import sample_content, sample_style

photo = sample_content()
night = sample_style()
r, g, b = sample_style(seed=3).split()
ember = Image.merge("RGB", (b, g, r))  # the same strokes in warm colours: a second painting
w, h = photo.size


def side_by_side(pictures: dict[str, Image.Image], height: int = 128) -> Image.Image:
    """The pictures in a row, each scaled to ``height`` and labelled under it."""
    scaled = [p.resize((round(p.width * height / p.height), height)) for p in pictures.values()]
    sheet = Image.new("RGB", (sum(p.width for p in scaled) + 8 * (len(scaled) - 1), height + 16), "white")
    x = 0
    for (label, _), p in zip(pictures.items(), scaled):
        sheet.paste(p.convert("RGB"), (x, 0))
        ImageDraw.Draw(sheet).text((x + 2, height + 3), label, fill="black")
        x += p.width + 8
    return sheet


# %%
# The masks: white where each style goes; the keep mask is white where the photo stays.
sky = Image.new("L", (w, h), 0)
ImageDraw.Draw(sky).rectangle([0, 0, w, int(h * 0.5)], fill=255)
land = sky.point(lambda v: 255 - v)
house = Image.new("L", (w, h), 0)
ImageDraw.Draw(house).rectangle([int(w * 0.2), int(h * 0.38), int(w * 0.46), int(h * 0.72)], fill=255)
side_by_side({"photo": photo, "night (sky)": night, "ember (land)": ember, "sky": sky, "keep": house}).save(
    "masks_inputs.png")

# %%
# One run: each region matches its own painting's Gram matrices; the house keeps the photo's pixels.
result = impasto.stylize(photo, [night, ember], masks=[sky, land], keep_mask=house, size=128, steps=40,
                         progress=False)
unmasked = impasto.stylize(photo, [night, ember], size=128, steps=40, progress=False)
side_by_side({"both styles, no masks": unmasked.image, "a style per region, house kept": result.image}).save(
    "masks_result.png")
