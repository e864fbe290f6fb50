"""Named recipes: each a partial StyleConfig (plain values), and one line on what it is for.

``impasto.config`` re-exports ``PRESETS`` and ``PRESET_NOTES`` (``from impasto.config import PRESETS`` still works)
and applies a preset before the other settings (``from_dict({"preset": ...})``).
"""

from __future__ import annotations

from typing import Any

# impasto's style layers: weights falling with depth (4, 4, 2, 1) and relu5_1 at a tenth of relu4_1. relu5_1's Gram
# statistics carry object parts (eyes, faces, the painting's moon): weighted like the others, a portrait's eyes turned
# up in a photo's sky and water; at 0.1 the brushwork, swirls and palette stay and the objects do not (bench/gallery.py,
# docs/explanation/defaults.md).
DEFAULT_STYLE_LAYERS = (("relu1_1", 4.0), ("relu2_1", 4.0), ("relu3_1", 2.0), ("relu4_1", 1.0), ("relu5_1", 0.1))
# The neighbour loss's hypercolumn layers (bench/gallery.py, docs/how-to/neighbours.md): relu2_1 for strokes and
# colour, relu3_1 for texture, relu4_1 twice for the parts of things, so a location matches paint of the same kind of
# thing. relu1_1 (single pixels' colour) made the strokes small; relu5_1 costs a fifth more and brings objects back.
NEIGHBOUR_LAYERS = (("relu2_1", 1.0), ("relu3_1", 1.0), ("relu4_1", 2.0))
# Gatys et al.'s and jcjohnson/neural-style's: relu1_1…relu5_1, equal weights (impasto's defaults before 2026-12).
GATYS_STYLE_LAYERS = (("relu1_1", 1.0), ("relu2_1", 1.0), ("relu3_1", 1.0), ("relu4_1", 1.0), ("relu5_1", 1.0))

PRESETS: dict[str, dict[str, Any]] = {
    # impasto's defaults, spelled out.
    "default": {},
    # A quick look at the full size: coarse to fine in steps of 2 (128, 256, 512), few steps where they are dear.
    "preview": {"scale_factor": 2.0, "first_steps": 60, "steps": 10},
    # impasto's previous, longer schedule (200 steps at the first scale, 100 at each later one) with today's layers.
    "quality": {"first_steps": 200, "steps": 100},
    # Style by neighbours (Kolkin et al. 2022): each location of the result takes its nearest style feature.
    # Its colours are NNST's finish (preserve_color "palette"): the loss matches shapes and strokes more than hues,
    # and left to it a pencil drawing painted a photo's water blue (bench/gallery.py).
    "neighbour": {"style_loss": "neighbour", "style_layers": NEIGHBOUR_LAYERS, "preserve_color": "palette"},
    # The classic PyTorch exercise exactly as the report (../shared/reference/seed-report.txt) ran its base train:
    # load_image's transforms.Resize(400) sets the short side, each style is stretched to the content's (H, W)
    # (load_image(style, shape=content.shape[-2:])), 1000 steps of optim.Adam([target], lr=0.003) with PyTorch's
    # default betas on torchvision-normalised, unclamped pixels starting from the content; the unnormalised Gram and
    # its loss formula; "conv" layers that were really relu outputs (in-place ReLU). The style layer weights are the
    # Udacity notebook's: the report's printed loop never multiplies by them (tests/test_report_oracle.py).
    "gatys-adam": {
        "size": 400, "size_side": "short", "start_size": None, "steps": 1000, "first_steps": None,
        "optimizer": "adam", "lr": 0.003, "adam_beta2": 0.999, "content_weight": 1.0, "style_weight": 1e6,
        "tv_weight": 0.0, "content_layers": ("relu4_2",),
        "style_layers": (("relu1_1", 1.0), ("relu2_1", 0.75), ("relu3_1", 0.2), ("relu4_1", 0.2), ("relu5_1", 0.2)),
        "style_fit": "stretch", "init": "content", "pooling": "max", "padding": "zeros", "loss_norm": "classic", "param": "normalized",
        "style_loss": "gram", "ema": None, "tol": None,
    },
    # jcjohnson/neural-style's defaults.
    "gatys-lbfgs": {
        "size": 512, "size_side": "long", "start_size": None, "steps": 1000, "first_steps": None, "optimizer": "lbfgs", "lr": 1.0,
        "content_weight": 5.0, "style_weight": 100.0, "tv_weight": 1e-3, "content_layers": ("relu4_2",),
        "style_layers": GATYS_STYLE_LAYERS, "style_fit": "keep", "init": "gaussian", "pooling": "max", "padding": "zeros", "loss_norm": "jcjohnson",
        "param": "rgb", "style_loss": "gram", "ema": None, "tol": None,
    },
}

# What each preset is for, in one line ('impasto presets'; a test checks that every preset has one).
PRESET_NOTES: dict[str, str] = {
    "default": "impasto's fast recipe: coarse to fine from 128 px, Adam on pixels, relative losses",
    "preview": "a quick look at the full size in a quarter of the default's time, to try settings before a run",
    "quality": "the longer schedule, at 2.4x the default's time: finer brushwork, for a picture to keep",
    "neighbour": "style by neighbours: each part takes the painting's nearest paint; no eye of a portrait lands",
    "gatys-adam": "the classic PyTorch exercise as the report ran it: 400 px short side, styles stretched, "
                  "1000 Adam steps",
    "gatys-lbfgs": "jcjohnson/neural-style's defaults: one scale, 1000 L-BFGS steps from Gaussian noise",
}
