"""StyleConfig: every knob of a run, typed, frozen and validated once; presets; dict/TOML loading.

A config is plain data. Variants are made with ``config.replace(**changes)`` (validated again), which is what sweeps
need; ``config.key()`` is a hash over every field, used to name and resume runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .bounds import MAX_TOML_BYTES, parse_toml
from .checks import check_ranges, suggest
from .coercion import ImagePath, Spec, coercer, invalid
from .core.schedule import fit_side
from .errors import ConfigError
from .outputs import parse_print
from .presets import DEFAULT_STYLE_LAYERS, PRESETS
from .presets import PRESET_NOTES as PRESET_NOTES  # re-exported: impasto.config.PRESET_NOTES

Optimizer = Literal["adam", "lbfgs"]
Pooling = Literal["max", "avg"]
Padding = Literal["zeros", "reflect", "replicate", "replicate-first"]
LossNorm = Literal["relative", "classic", "jcjohnson"]
StyleLossKind = Literal["gram", "wasserstein", "neighbour"]
Param = Literal["rgb", "normalized"]
PreserveColor = Literal["none", "luminance", "histogram", "palette"]
MaskRule = Literal["inside", "simple"]
SizeSide = Literal["long", "short"]
StyleFit = Literal["keep", "stretch"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Device = str  # "auto", "cpu", "cuda", "cuda:1", "mps"


@dataclass(frozen=True)
class StyleConfig:
    """One style-transfer run. All fields are keyword-only; defaults are the fast CPU recipe (the docs' Why these
    defaults)."""

    size: int = 512
    """Size of the result in pixels: its long side (the content is resized so that its long side is ``size``), or its
    short side with ``size_side = 'short'``."""
    size_side: SizeSide = "long"
    """Which side ``size`` and ``start_size`` set: ``long`` (the result fits in size × size) or ``short`` (as
    torchvision's ``Resize(size)``, the classic exercise's, did: the long side follows, truncated)."""
    shape: tuple[int, int] | None = None
    """Exact (height, width) of the result; overrides ``size``."""
    start_size: int | None = 128
    """Coarse-to-fine: the ``size_side`` side of the first scale; scales grow by ``scale_factor`` up to ``size``. None:
    one scale."""
    scale_factor: float = math.sqrt(2)
    """Growth of the sides from one scale to the next."""
    steps: int = 40
    """Iterations at each scale (at the first of several: ``first_steps``)."""
    first_steps: int | None = None
    """Iterations at the first (coarsest) of several scales; None: 2 × ``steps``."""
    scale_steps: tuple[int, ...] | None = None
    """Iterations at each scale, coarsest first, e.g. "200,100,100,50"; the last repeats. Overrides the two above."""
    optimizer: Optimizer = "adam"
    """``adam`` (per-pixel, robust, batchable) or ``lbfgs`` (jcjohnson/neural-style's choice)."""
    lr: float = 0.02
    """Learning rate: on pixels in [0, 1] (``param='rgb'``) or on normalised pixels (``param='normalized'``)."""
    adam_beta2: float = 0.99
    """Adam's β₂, the decay of its squared-gradient average (β₁ is 0.9): 0.99 (crowsonkb's; it adapts to each scale
    within ~100 steps) or 0.999 (PyTorch's default, the classic exercise's)."""
    content_weight: float = 1.0
    """Weight of the content loss."""
    style_weight: float = 20.0
    """Weight of the style loss (relative to content_weight; see loss_norm)."""
    tv_weight: float = 10.0
    """Total-variation weight: smooths the result's finest detail. 10 calms the colour speckle of flat areas (sky,
    water) by about a quarter with the brush strokes kept (bench/borders.py); 0: none, as the classic recipes."""
    temporal_weight: float = 300.0
    """Video (``impasto video``): weight of the temporal loss, the masked mean squared difference (pixels in [0, 1])
    to the earlier frames' outputs warped onto this frame by optical flow (Ruder et al.); 0: each frame on its own.
    300 with 20 steps a later frame is as consistent as 100 with 50, at 2.3–2.5× the frames per CPU-minute
    (bench/video.py). A still image has no earlier frame: there it changes nothing."""
    content_layers: tuple[str, ...] = ("relu4_2",)
    """Layers whose activations the result must keep from the content (names or torchvision indices)."""
    style_layers: tuple[tuple[str, float], ...] = DEFAULT_STYLE_LAYERS
    """(layer, weight) pairs. Accepts "relu1_1:1,relu2_1:0.75", a list of names, or a {layer: weight} table."""
    style_blend: tuple[float, ...] | None = None
    """Weights of the style images, normalised to sum 1; None: equal."""
    style_scale: float = 1.0
    """Size of the style images relative to the content's (its ``size_side`` side; 0.5: half; brush strokes look
    larger)."""
    style_fit: StyleFit = "keep"
    """How a style image is sized: ``keep`` its aspect ratio, or ``stretch`` it to the content's exact shape (times
    ``style_scale``), as the classic exercise's ``load_image(style, shape=content.shape[-2:])`` did."""
    init: str = "content"
    """``content``, ``noise`` (uniform), ``gaussian`` (neural-style's random init: the ImageNet mean colour plus
    Gaussian noise, σ = 0.001 on the 0-255 scale) or the path of an image."""
    seed: int = 0
    """Random seed: the same inputs, seed and device give the same pixels."""
    device: Device = "auto"
    """``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    weights: str = "bundled"
    """``bundled`` (original VGG19, offline), ``torchvision`` (torch.hub) or a path to a state dict."""
    pooling: Pooling = "max"
    """``max`` (how VGG was trained) or ``avg`` (the paper's choice; smoother results)."""
    padding: Padding = "replicate-first"
    """What VGG's 3×3 convolutions see past the image's edge: ``replicate-first`` (replicate at the first convolution
    only, zeros after, as crowsonkb/style-transfer-pytorch does: no frame of paint along the edges, bench/borders.py),
    ``zeros`` (how VGG was trained; the study presets'), ``reflect`` or ``replicate``. Tiles pad only the image's
    outer edge: their inner edges see real neighbours."""
    loss_norm: LossNorm = "relative"
    """How losses are normalised (the docs' Loss conventions): ``relative`` (impasto), ``classic`` (the PyTorch exercise),
    ``jcjohnson`` (neural-style)."""
    style_loss: StyleLossKind = "gram"
    """``gram`` (Gatys), ``wasserstein`` (W2 between Gaussians of the features) or ``neighbour`` (per location: each
    takes its nearest style feature, Kolkin et al. 2022; no object of the painting is forced into the photo)."""
    neighbour_mix: float = 0.75
    """Neighbour loss: the photo's share of the image the neighbours are searched with (the rest is the current
    result); 1: the photo alone (the most faithful), lower: the result drifts further into the painting."""
    neighbour_refresh: int = 0
    """Neighbour loss: search the neighbours again every N steps at the last scale (0: once at each scale's start)."""
    neighbour_rarity: float = 0.0
    """Neighbour loss: how strongly the search avoids the painting's rare features (what occurs once, like an eye)
    in favour of what recurs (its strokes), e.g. 1; 0: plain nearest neighbours as in Kolkin et al. 2022."""
    neighbour_rotations: bool = False
    """Neighbour loss: also search the style images turned by 90°, 180° and 270° (about 4× the search's cost)."""
    param: Param = "rgb"
    """What the optimiser moves: pixels in [0, 1], clamped after each step (``rgb``), or ImageNet-normalised pixels,
    unclamped, as the classic exercise did (``normalized``)."""
    ema: float | None = None
    """Decay of an exponential moving average of the iterates used as the output (0.99 is good); None: off."""
    tol: float | None = None
    """Early stop at a scale when the loss improves by less than this fraction over 20 steps; None: off."""
    preserve_color: PreserveColor = "none"
    """``luminance``: transfer on luminance only and keep the content's colours; ``histogram``: give the styles the
    content's colour statistics first; ``palette``: the photo's colour layout in the painting's palette (NNST's
    finish); ``none``."""
    masks: tuple[ImagePath, ...] | None = None
    """One mask per style image, in order: where each style goes (white or opaque); any size. Overlaps share."""
    mask_colors: ImagePath | None = None
    """Instead of ``masks``: one image, a flat colour per style image, in the order each first appears."""
    keep_mask: ImagePath | None = None
    """Where to keep the photo (white: keep, grey: partly), with a feathered seam."""
    strength: float = 1.0
    """How much of the painting to keep, from 0 (the photo) to 1 (the painting): the result is blended with the
    photo after the run, linearly in OKLab; ``impasto blend`` changes it later without a new run."""
    style_masks: tuple[ImagePath, ...] | None = None
    """One mask per style image, over it (none: all of it): take each style from part of its painting."""
    mask_rule: MaskRule = "simple"
    """How masks reach each style layer: ``simple`` (painted up to borders) or ``inside`` (no style crosses one)."""
    mask_feather: float = 0.01
    """Soft mask edges: a blur of this fraction of the result's long side; 0: as given."""
    print_size: Spec | None = None
    """A print, WIDTHxHEIGHT in cm, mm or in at a DPI (30x40cm@300dpi, 8x10in@300dpi): the result's exact size in
    pixels (the photo cropped to the print's proportions, centred) and the DPI written into the file; overrides
    ``size`` and ``shape``. The memory check picks tiles when the print does not fit whole."""
    bit_depth: int = 8
    """Bits a channel of the written image: 8, or 16 for .png and .tif (the float result is quantised once, as it
    is written)."""
    background: Spec | None = None
    """A colour (white, #f4efe6) to flatten a transparent photo's result onto; none: the result keeps the photo's
    transparency (.png, .webp, .tif; a .jpg needs a background)."""
    tile_size: int = 0
    """Run VGG on tiles of this many pixels (a multiple of 16) with random offsets each step, for sizes beyond memory
    (4096 px); the gradient is the whole image's. 0: the whole image at once."""
    precision: Precision = "auto"
    """VGG's arithmetic: ``auto`` (bf16 autocast on CUDA and on CPUs with native bf16, else fp32), ``fp32``, ``bf16``
    or ``fp16`` (autocast); Gram matrices and losses are always fp32."""
    checkpoint: bool = False
    """Activation checkpointing: recompute activations during backward; less memory, one more forward pass per step."""
    save_every: int = 0
    """Write an intermediate image every N steps (0: never)."""
    max_pixels: int = 40_000_000
    """Refuse input images whose declared pixel count is larger (decompression-bomb guard)."""
    preset: str | None = None
    """The preset this config started from (recorded in the recipe)."""

    def __post_init__(self) -> None:
        # Accept the forms people write (strings from a CLI, lists from TOML/JSON) and store one canonical form.
        for name, coerce in _COERCE.items():
            object.__setattr__(self, name, coerce(name, getattr(self, name)))
        _validate(self)

    # -- construction ---------------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> StyleConfig:
        """A copy with some fields changed (coerced and validated like ``from_dict``).

        Changing ``preset`` starts again from that preset, then applies the other changes.
        """
        if changes.get("preset") not in (None, self.preset):
            return from_dict(changes)
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["style_layers"] = {name: w for name, w in self.style_layers}
        d["content_layers"] = list(self.content_layers)
        if self.shape is not None:
            d["shape"] = list(self.shape)
        if self.style_blend is not None:
            d["style_blend"] = list(self.style_blend)
        if self.scale_steps is not None:
            d["scale_steps"] = list(self.scale_steps)
        for name in ("masks", "style_masks"):
            if d[name] is not None:
                d[name] = list(d[name])
        return d

    def result_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the result for a content image of ``height`` × ``width``: ``shape``, or the content's aspect
        ratio with ``size`` on its ``size_side`` side."""
        if self.print_size is not None:
            return parse_print(self.print_size).shape
        return self.shape if self.shape is not None else fit_side(height, width, self.size, self.size_side)

    def key(self) -> str:
        """A short hash over every field (not the device, which does not change the recipe)."""
        d = self.to_dict()
        d.pop("device")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


FIELD_NAMES = tuple(f.name for f in fields(StyleConfig))


def field_docs() -> dict[str, str]:
    """Each field's docstring (the string under it in the class body): one source for the CLI's and web's help."""
    import ast
    import inspect
    import textwrap

    tree = ast.parse(textwrap.dedent(inspect.getsource(StyleConfig)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# Each field's coercer and each Literal field's choices, from its annotation (one source: the class above).
_HINTS = get_type_hints(StyleConfig)
_COERCE = {name: coercer(name, _HINTS[name]) for name in FIELD_NAMES}
_CHOICES = {name: get_args(hint) for name, hint in _HINTS.items() if get_origin(hint) is Literal}


# -- validation: once every field is coerced; choices, then ranges, then combinations ------------------------------
def _validate(c: StyleConfig) -> None:
    for key, choices in _CHOICES.items():
        v = getattr(c, key)
        if v not in choices:
            raise invalid(key, v, f"choose one of {', '.join(choices)}{suggest(v, choices)}")
    check_ranges(c)


def from_dict(data: Mapping[str, Any], *, base: StyleConfig | None = None) -> StyleConfig:
    """Build a config from plain values. A ``preset`` key applies that preset first; other keys override it."""
    data = dict(data)
    unknown = [k for k in data if k not in FIELD_NAMES]
    if unknown:
        k = unknown[0]
        raise ConfigError(f"unknown setting {k!r}{suggest(k, FIELD_NAMES)}; settings are: {', '.join(FIELD_NAMES)}",
                          key=k)
    values: dict[str, Any] = base.to_dict() if base is not None else {}
    preset = data.get("preset")
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise invalid("preset", preset, f"choose one of {', '.join(PRESETS)}{suggest(preset, PRESETS)}")
        values.update(PRESETS[preset])
    values.update(data)
    return StyleConfig(**values)  # every field's coercer takes any plain value: a TypeError here is a bug


def preset(name: str, **overrides: Any) -> StyleConfig:
    """A preset's config, with overrides: ``preset("gatys-adam", steps=100)``."""
    return from_dict({"preset": name, **overrides})


def key_line(text: str, key: str) -> int | None:
    """1-based line of ``key = ...`` in TOML text, for error messages."""
    for n, line in enumerate(text.splitlines(), start=1):
        if line.split("=", 1)[0].strip().strip('"') == key and "=" in line:
            return n
    return None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors become a ConfigError naming the file and line."""
    from .io.files import path_problem  # a FIFO would block the read, a symlink loop is not "no such file"

    p = Path(path)
    if (problem := path_problem(p)) not in (None, "no such file"):
        raise ConfigError(f"{path}: {problem}; give a TOML file")
    try:
        if problem is None and p.stat().st_size > MAX_TOML_BYTES:  # read whole, parsed whole: bound it first
            raise ConfigError(f"{path}: {p.stat().st_size:,} bytes is over the limit of {MAX_TOML_BYTES:,} for a "
                              "settings file; settings and experiments take a few KB")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {e.object[e.start]:#04x}); save the TOML file as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    data = parse_toml(text, path)
    data["__text__"] = text
    return data


def from_toml(path: str | Path, *, base: StyleConfig | None = None) -> StyleConfig:
    """A config from a TOML file of top-level keys (the same names as StyleConfig's fields)."""
    data = load_toml(path)
    text = data.pop("__text__")
    try:
        return from_dict(data, base=base)
    except ConfigError as e:
        line = key_line(text, e.key) if e.key in data else None
        raise ConfigError(f"{path}:{line}: {e}" if line else f"{path}: {e}", key=e.key) from None


