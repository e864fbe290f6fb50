"""The gallery's pairs: photos and paintings from public repositories' example inputs and
scikit-image, with the faces of the portrait paintings marked by hand (for the meter's ``copying``).

Bench-only data, never committed. The fetched inputs live under ``$IMPASTO_GALLERY_INPUTS`` (default
bench/out/inputs), one folder per repository, laid out as their example folders are:

    git clone https://github.com/nkolkin13/NeuralNeighborStyleTransfer   # MIT: inputs/content/C*.png, inputs/style/S*.jpg
    git clone https://github.com/nkolkin13/STROTSS                        # content_im.jpg, style_im.jpg
    git clone https://github.com/xunhuang1995/AdaIN-style                 # input/content/*.jpg, input/style/*.jpg
    mkdir -p $IMPASTO_GALLERY_INPUTS/{nnst,strotss,adain}
    cp NeuralNeighborStyleTransfer/inputs/*/* $IMPASTO_GALLERY_INPUTS/nnst/
    cp STROTSS/{content_im,style_im}.jpg $IMPASTO_GALLERY_INPUTS/strotss/
    cp AdaIN-style/input/{content,style}/* $IMPASTO_GALLERY_INPUTS/adain/

jcjohnson/neural-style's example inputs are held out for an independent evaluation: none of them is named here,
including ../shared/images (taken from them) and AdaIN-style's copies of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from common import OUT

INPUTS = Path(os.environ.get("IMPASTO_GALLERY_INPUTS", OUT / "inputs"))

# name → (where, file); where: "made" (painted by bench/gallery.py from skimage),
# "skimage" (a photo scikit-image ships), or a folder under INPUTS.
FILES = {
    # photos
    "butterfly": ("nnst", "C1.png"), "reichstag": ("nnst", "C2.png"), "rugby": ("nnst", "C3.png"),
    "bouquet": ("nnst", "C4.png"), "yosemite": ("nnst", "C5.png"), "farmhouse": ("nnst", "C6.png"),
    "fjord": ("nnst", "C7.png"), "owls": ("strotss", "content_im.jpg"), "chicago": ("adain", "chicago.jpg"),
    "cornell": ("adain", "cornell.jpg"), "sailboat": ("adain", "sailboat.jpg"), "modern": ("adain", "modern.jpg"),
    # photos of faces
    "avril": ("adain", "avril.jpg"), "blonde_girl": ("adain", "blonde_girl.jpg"), "astronaut": ("skimage", "astronaut"),
    # paintings and drawings
    "landscape_oil": ("nnst", "S1.jpg"), "arches_drawing": ("nnst", "S2.jpg"), "fire": ("nnst", "S5.jpg"),
    "street_scene": ("nnst", "S7.jpg"), "flower_still_life": ("strotss", "style_im.jpg"),
    "contrast_of_forms": ("adain", "contrast_of_forms.jpg"), "brushstrokes": ("adain", "brushstrokes.jpg"),
    # portrait and figure paintings (the copying test)
    "face_sketch": ("nnst", "S3.jpg"), "cubist_figure": ("nnst", "S8.jpg"),
    "antimonocromatismo": ("adain", "antimonocromatismo.jpg"), "pencil_portrait": ("adain", "sketch.png"),
    "la_muse": ("adain", "la_muse.jpg"), "peasant_dress": ("adain", "woman_in_peasant_dress.jpg"),
    "portrait": ("made", "portrait"),
}

# The faces (eyes, nose, mouth) of the portrait paintings: (x0, y0, x1, y1) in fractions, marked by eye.
FACES: dict[str, list[tuple[float, float, float, float]]] = {
    "face_sketch": [(0.18, 0.10, 0.88, 0.45), (0.35, 0.52, 0.78, 0.72)],  # eyes and glasses; the mouth
    "antimonocromatismo": [(0.38, 0.27, 0.64, 0.60)],
    "pencil_portrait": [(0.25, 0.28, 0.80, 0.85)],
    "la_muse": [(0.78, 0.08, 0.97, 0.30), (0.50, 0.28, 0.72, 0.45)],  # the seated woman's head; the sleeper's
    "peasant_dress": [(0.27, 0.05, 0.45, 0.18)],
    "portrait": [(0.33, 0.12, 0.57, 0.43)],  # the astronaut's face
}

# Tuned on (the neighbour preset's layers and weights were chosen looking at these): butterfly+landscape_oil,
# farmhouse+face_sketch, chicago+antimonocromatismo. Every other pair was only looked at afterwards.
TUNED = ("butterfly+landscape_oil", "farmhouse+face_sketch", "chicago+antimonocromatismo")
PAIRS = [
    *TUNED,
    # a portrait's faces must not land in a photo
    "reichstag+antimonocromatismo", "reichstag+pencil_portrait", "sailboat+face_sketch",
    "fjord+portrait", "cornell+antimonocromatismo", "reichstag+la_muse", "yosemite+peasant_dress",
    "fjord+antimonocromatismo", "cornell+cubist_figure", "sailboat+la_muse",
    # faces painted with portraits and figures
    "avril+la_muse", "blonde_girl+antimonocromatismo", "astronaut+pencil_portrait", "avril+cubist_figure",
    "blonde_girl+peasant_dress",
    # other paintings
    "bouquet+flower_still_life", "owls+brushstrokes", "modern+contrast_of_forms",
]
# More pairs for longer sittings (``--pairs``).
MORE = ["rugby+arches_drawing", "chicago+street_scene", "astronaut+fire"]


def resolve(name: str, made) -> Path | None:  # type: ignore[no-untyped-def]
    """A name's file, or None when it is not there (its repository not fetched)."""
    where, file = FILES[name]
    if where == "made":
        return made(file)
    elif where == "skimage":
        path = OUT / "gallery" / "photos" / f"{file}.png"
        if not path.exists():
            try:
                from skimage import data
            except ImportError:
                return None
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(getattr(data, file)()).save(path)
    else:
        path = INPUTS / where / file
    return path if path.is_file() else None


# -- the made portrait style: scikit-image's astronaut, painted by a filter --------------------------------------------------------------------------------------------
def _kuwahara(img: np.ndarray, r: int) -> np.ndarray:
    """Each pixel takes the mean of the least varied of its four (r+1)² corner windows: flat patches, kept edges."""
    h, w, _ = img.shape
    p = np.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")  # (H+2r, W+2r, 3)
    k = r + 1

    def means(x: np.ndarray) -> np.ndarray:  # mean of the k×k window whose top-left is each point: (H+r, W+r, …)
        s = np.pad(x, ((1, 0), (1, 0)) + ((0, 0),) * (x.ndim - 2)).cumsum(0).cumsum(1)
        return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / k**2

    lum = p.mean(2)
    m, var = means(p), means(lum**2) - means(lum) ** 2
    corners = [(0, 0), (0, r), (r, 0), (r, r)]  # pixel (y, x) is p's (y+r, x+r): these windows are its quadrants
    ms = np.stack([m[dy:dy + h, dx:dx + w] for dy, dx in corners])
    best = np.stack([var[dy:dy + h, dx:dx + w] for dy, dx in corners]).argmin(0)
    return np.take_along_axis(ms, best[None, ..., None], 0)[0]


def paint(photo: Image.Image, seed: int = 0) -> Image.Image:
    """A deterministic painterly filter: flat patches (Kuwahara), a posterised palette, then thousands of short
    strokes along the edges, with a little relief. Enough texture to be a style; faces stay faces (the test)."""
    rgb = photo.convert("RGB")
    scale = 512 / max(rgb.size)
    rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.Resampling.LANCZOS)
    flat = _kuwahara(np.asarray(rgb, dtype=np.float64), 5).clip(0, 255).astype(np.uint8)
    base = Image.fromarray(flat).quantize(20, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB")
    arr = np.asarray(base, dtype=np.int64)
    gy, gx = np.gradient(np.asarray(rgb.convert("L").filter(ImageFilter.GaussianBlur(4)), dtype=np.float64))
    rng = np.random.default_rng(seed)
    canvas = base.copy()
    draw = ImageDraw.Draw(canvas)
    for _ in range(rgb.width * rgb.height // 29):
        x, y = int(rng.integers(rgb.width)), int(rng.integers(rgb.height))
        angle = np.arctan2(gy[y, x], gx[y, x]) + np.pi / 2 + rng.normal(0, 0.25)  # along the edge, not across
        half = rng.uniform(4, 9)
        dx, dy = half * np.cos(angle), half * np.sin(angle)
        colour = tuple(int(c) for c in np.clip(arr[y, x] + rng.integers(-14, 15, 3), 0, 255))
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=colour, width=int(rng.integers(2, 5)))
    relief = np.asarray(canvas.convert("L").filter(ImageFilter.EMBOSS), dtype=np.float64) - 128
    out = np.asarray(canvas, dtype=np.float64) + 0.4 * relief[..., None]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))
