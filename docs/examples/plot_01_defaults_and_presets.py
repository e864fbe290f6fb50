"""
Defaults against the classic recipes
====================================

impasto's defaults (coarse-to-fine Adam on clamped pixels, relative losses, style layers falling with depth) beside
the two classic recipes it ships as presets: ``gatys-adam`` (the PyTorch exercise: Adam on normalised pixels,
lr 0.003, unnormalised Gram losses) and ``gatys-lbfgs`` (jcjohnson/neural-style: L-BFGS from noise), and the
``neighbour`` preset (style by neighbours, after Kolkin et al. 2022). Every run gets the same 40 steps first: the
classic recipes were made for 1000, which is the point of the comparison; then the classic two get 200 steps at a
smaller size, to show where they are heading.
"""

# %%
# The sample scene and its style, as ``impasto demo`` paints them.
from PIL import Image, ImageDraw
# sphinx_gallery_thumbnail_number = 2

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


side_by_side({"content": photo, "style": painting}).save("inputs.png")

# %%
# Four recipes, 40 steps each at 128 px. The presets set everything else (``impasto presets`` lists what).
runs = {
    "defaults": impasto.StyleConfig(size=128, steps=40),
    "gatys-adam": impasto.preset("gatys-adam", size=96, steps=40),  # sized on its short side, as the exercise
    "gatys-lbfgs": impasto.preset("gatys-lbfgs", size=128, steps=40),
    "neighbour": impasto.preset("neighbour", size=128, steps=40),
}
results = {name: impasto.stylize(photo, painting, config, progress=False) for name, config in runs.items()}
side_by_side({name: r.image for name, r in results.items()}).save("recipes.png")

# %%
# At 40 steps Adam on normalised pixels at lr 0.003 (``gatys-adam``) has hardly moved from the photo, and L-BFGS
# from noise (``gatys-lbfgs``) is still the flat mean colour it starts from. Given 200 steps (at 64 px, to keep the
# build short), ``gatys-adam`` has only begun to tint and texture the photo, and ``gatys-lbfgs`` has the painting's
# strokes everywhere but hardly the photo's layout yet: they need the 1000 iterations they were made for, where
# impasto's defaults painted the scene in 40.
classic = {
    "gatys-adam, 200 steps": impasto.preset("gatys-adam", size=48, steps=200),
    "gatys-lbfgs, 200 steps": impasto.preset("gatys-lbfgs", size=64, steps=200),
}
later = {name: impasto.stylize(photo, painting, config, progress=False).image for name, config in classic.items()}
side_by_side(later).save("recipes_longer.png")

# %%
# The classic recipes' loss values are in their own units (``loss_norm``): compare pictures, not numbers.
for name, r in results.items():
    print(f"{name:12} {r.config.loss_norm:10} total loss {r.losses['total']:.4g}")
