"""
Style weight and style layers
=============================

The two settings that change a picture most. ``style_weight`` trades the photo's structure for the painting's
texture; ``style_layers`` chooses which scale of the painting is matched: the shallow layers carry colour and fine
strokes, the deep ones larger motifs. Runs that share a size and schedule go through VGG together
(``impasto.stylize_batch``), so each row below is one batch.
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


base = impasto.StyleConfig(size=128, steps=40)

# %%
# Style weight: 1, 20 (the default) and 200, the content weight staying 1.
weights = [1.0, 20.0, 200.0]
results = impasto.stylize_batch(photo, painting, [base.replace(style_weight=w) for w in weights])
side_by_side({f"style_weight {w:g}": r.image for w, r in zip(weights, results)}).save("style_weight.png")

# %%
# Style layers: the shallow two, the defaults (relu1_1…relu5_1 weighted 4 : 4 : 2 : 1 : 0.1), the deep two.
layers = {
    "relu1_1, relu2_1": "relu1_1:1,relu2_1:1",
    "defaults": base.style_layers,
    "relu4_1, relu5_1": "relu4_1:1,relu5_1:1",
}
results = impasto.stylize_batch(photo, painting, [base.replace(style_layers=v) for v in layers.values()])
side_by_side({name: r.image for name, r in zip(layers, results)}).save("style_layers.png")
