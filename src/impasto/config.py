"""StyleConfig: every knob of a run, typed, frozen and validated once; presets; dict/TOML loading.

A config is plain data. Variants are made with ``config.replace(**changes)`` (validated again), which is what sweeps
need; ``config.key()`` is a hash over every field, used to name and resume runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

from .core.vgg import resolve_layer

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from .errors import ConfigError

Optimizer = Literal["adam", "lbfgs"]
Pooling = Literal["max", "avg"]
LossNorm = Literal["relative", "classic", "jcjohnson"]
StyleLossKind = Literal["gram", "wasserstein"]
Param = Literal["rgb", "normalized"]
PreserveColor = Literal["none", "luminance", "histogram"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
Device = str  # "auto", "cpu", "cuda", "cuda:1", "mps"

DEFAULT_STYLE_LAYERS = (("relu1_1", 1.0), ("relu2_1", 1.0), ("relu3_1", 1.0), ("relu4_1", 1.0), ("relu5_1", 1.0))


@dataclass(frozen=True)
class StyleConfig:
    """One style-transfer run. All fields are keyword-only; defaults are the fast CPU recipe (see README)."""

    size: int = 512
    """Long side of the result in pixels (the content is resized so that its long side is ``size``)."""
    shape: tuple[int, int] | None = None
    """Exact (height, width) of the result; overrides ``size``."""
    start_size: int | None = 128
    """Coarse-to-fine: long side of the first scale; scales grow by ``scale_factor`` up to ``size``. None: one scale."""
    scale_factor: float = math.sqrt(2)
    """Growth of the long side from one scale to the next."""
    steps: int = 100
    """Iterations at each scale (at the first of several: ``first_steps``)."""
    first_steps: int | None = None
    """Iterations at the first (coarsest) of several scales; None: 2 × ``steps``."""
    scale_steps: tuple[int, ...] | None = None
    """Iterations at each scale, coarsest first, e.g. "200,100,100,50"; the last repeats. Overrides the two above."""
    optimizer: Optimizer = "adam"
    """``adam`` (per-pixel, robust, batchable) or ``lbfgs`` (jcjohnson/neural-style's choice)."""
    lr: float = 0.02
    """Learning rate: on pixels in [0, 1] (``param='rgb'``) or on normalised pixels (``param='normalized'``)."""
    content_weight: float = 1.0
    """Weight of the content loss."""
    style_weight: float = 10.0
    """Weight of the style loss (relative to content_weight; see loss_norm)."""
    tv_weight: float = 0.0
    """Total-variation weight; smooths the result."""
    content_layers: tuple[str, ...] = ("relu4_2",)
    """Layers whose activations the result must keep from the content (names or torchvision indices)."""
    style_layers: tuple[tuple[str, float], ...] = DEFAULT_STYLE_LAYERS
    """(layer, weight) pairs. Accepts "relu1_1:1,relu2_1:0.75", a list of names, or a {layer: weight} table."""
    style_blend: tuple[float, ...] | None = None
    """Weights of the style images, normalised to sum 1; None: equal."""
    style_scale: float = 1.0
    """Size of the style images relative to the content's long side (0.5: half; brush strokes look larger)."""
    init: str = "content"
    """``content``, ``noise`` (uniform) or the path of an image."""
    seed: int = 0
    """Random seed: the same inputs, seed and device give the same pixels."""
    device: Device = "auto"
    """``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    weights: str = "bundled"
    """``bundled`` (original VGG19, offline), ``torchvision`` (torch.hub) or a path to a state dict."""
    pooling: Pooling = "max"
    """``max`` (how VGG was trained) or ``avg`` (the paper's choice; smoother results)."""
    loss_norm: LossNorm = "relative"
    """How losses are normalised (see README): ``relative`` (impasto), ``classic`` (the PyTorch exercise),
    ``jcjohnson`` (neural-style)."""
    style_loss: StyleLossKind = "gram"
    """``gram`` (Gatys) or ``wasserstein`` (means and covariances, W2 between Gaussians)."""
    param: Param = "rgb"
    """What the optimiser moves: pixels in [0, 1], clamped after each step (``rgb``), or ImageNet-normalised pixels,
    unclamped, as the classic exercise did (``normalized``)."""
    ema: float | None = None
    """Decay of an exponential moving average of the iterates used as the output (0.99 is good); None: off."""
    tol: float | None = None
    """Early stop at a scale when the loss improves by less than this fraction over 20 steps; None: off."""
    preserve_color: PreserveColor = "none"
    """``luminance``: transfer on luminance only and keep the content's colours; ``histogram``: give the styles the
    content's colour statistics first; ``none``."""
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
        for f in fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name)))
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
        return d

    def key(self) -> str:
        """A short hash over every field (not the device, which does not change the recipe)."""
        d = self.to_dict()
        d.pop("device")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def scales(self) -> int:
        return 1 if self.start_size is None or self.start_size >= self.size else 2


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
_CHOICES = {
    "optimizer": get_args(Optimizer),
    "pooling": get_args(Pooling),
    "loss_norm": get_args(LossNorm),
    "style_loss": get_args(StyleLossKind),
    "param": get_args(Param),
    "preserve_color": get_args(PreserveColor),
    "precision": get_args(Precision),
}

PRESETS: dict[str, dict[str, Any]] = {
    # impasto's defaults, spelled out.
    "default": {},
    # A quick look: small and few steps.
    "preview": {"size": 256, "start_size": 128, "steps": 50},
    # The classic PyTorch exercise exactly as the report ran it: torchvision-style normalised pixels optimised by Adam
    # (lr 0.003), unnormalised Gram and its loss formula, "conv" layers that were really relu outputs (in-place ReLU).
    "gatys-adam": {
        "size": 400, "start_size": None, "steps": 2000, "first_steps": None, "optimizer": "adam", "lr": 0.003,
        "content_weight": 1.0, "style_weight": 1e6, "tv_weight": 0.0, "content_layers": ("relu4_2",),
        "style_layers": (("relu1_1", 1.0), ("relu2_1", 0.75), ("relu3_1", 0.2), ("relu4_1", 0.2), ("relu5_1", 0.2)),
        "init": "content", "pooling": "max", "loss_norm": "classic", "param": "normalized", "style_loss": "gram",
        "ema": None, "tol": None,
    },
    # jcjohnson/neural-style's defaults.
    "gatys-lbfgs": {
        "size": 512, "start_size": None, "steps": 1000, "first_steps": None, "optimizer": "lbfgs", "lr": 1.0,
        "content_weight": 5.0, "style_weight": 100.0, "tv_weight": 1e-3, "content_layers": ("relu4_2",),
        "style_layers": DEFAULT_STYLE_LAYERS, "init": "noise", "pooling": "max", "loss_norm": "jcjohnson",
        "param": "rgb", "style_loss": "gram", "ema": None, "tol": None,
    },
}


def suggest(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key} = {value!r} is invalid: {allowed}")


def parse_style_layers(value: Any) -> tuple[tuple[str, float], ...]:
    """"relu1_1:1,relu2_1:0.75" | ["relu1_1", ...] | {"relu1_1": 1.0} | [("relu1_1", 1.0)] → ((name, weight), ...)."""
    items: list[tuple[Any, Any]] = []
    if isinstance(value, str):
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, _, w = part.partition(":")
            items.append((name, w or 1.0))
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (list, tuple)) and len(item) != 2:
                raise _bad("style_layers", value, 'give (layer, weight) pairs, "relu1_1:1.0,relu2_1:0.75" or a table')
            items.append(tuple(item) if isinstance(item, (list, tuple)) else (item, 1.0))  # type: ignore[arg-type]
    else:
        raise _bad("style_layers", value, 'give "relu1_1:1.0,relu2_1:0.75", a list of layer names or a table')
    out = []
    for name, w in items:
        try:
            layer = resolve_layer(name)
        except ValueError as e:
            raise ConfigError(f"style_layers: {e}") from None
        out.append((layer, _float("style_layers", w)))
    return tuple(out)


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise _bad(key, value, "expected a number")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise _bad(key, value, "expected a number") from None


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise _bad(key, value, "expected a whole number")
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise _bad(key, value, "expected a whole number") from None
    if not math.isfinite(f) or f != int(f):
        raise _bad(key, value, "expected a whole number")
    return int(f)


def _coerce(key: str, value: Any) -> Any:
    """Values from the CLI, TOML, JSON or Python → the field's type."""
    if key == "checkpoint":
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise _bad(key, value, "expected true or false")
            return value.lower() in ("true", "1", "yes", "on")
        return bool(value)
    if key in ("size", "steps", "seed", "save_every", "max_pixels", "tile_size"):
        return _int(key, value)
    if key in ("start_size", "first_steps"):
        return None if value in (None, "none", "None", "") else _int(key, value)
    if key in ("lr", "content_weight", "style_weight", "tv_weight", "style_scale", "scale_factor"):
        return _float(key, value)
    if key in ("ema", "tol"):
        return None if value in (None, "none", "None", "", 0, "0") else _float(key, value)
    if key == "shape":
        if value in (None, "", "none"):
            return None
        parts = value.lower().replace("x", ",").split(",") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)) or len(parts) != 2:
            raise _bad(key, value, "give HEIGHTxWIDTH, e.g. 300x400")
        try:
            return (_int(key, parts[0]), _int(key, parts[1]))
        except ConfigError:
            raise _bad(key, value, "give HEIGHTxWIDTH in whole pixels, e.g. 300x400") from None
    if key == "content_layers":
        if not isinstance(value, (str, list, tuple)):
            raise _bad(key, value, 'give layer names: "relu4_2" or "relu3_1,relu4_2"')
        names = value.split(",") if isinstance(value, str) else list(value)
        try:
            return tuple(resolve_layer(n) for n in names if str(n).strip())
        except ValueError as e:
            raise ConfigError(f"content_layers: {e}") from None
    if key == "style_layers":
        return parse_style_layers(value)
    if key == "scale_steps":
        if value in (None, "", "none", "None"):
            return None
        parts = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_int(key, p) for p in parts)
    if key == "style_blend":
        if value in (None, "", "none"):
            return None
        if not isinstance(value, (str, list, tuple)):
            raise _bad(key, value, 'give one weight per style image: "0.3,0.7"')
        parts = re.split(r"[,\s]+", value.strip()) if isinstance(value, str) else list(value)  # "0.2,0.8", "0.2 0.8"
        return tuple(_float(key, p) for p in parts)
    if key in _CHOICES or key in ("init", "device", "weights", "preset"):
        return None if key == "preset" and value is None else str(value)
    return value


def _validate(c: StyleConfig) -> None:
    for key, choices in _CHOICES.items():
        v = getattr(c, key)
        if v not in choices:
            raise _bad(key, v, f"choose one of {', '.join(choices)}{suggest(v, choices)}")
    for key in ("size", "steps", "max_pixels"):
        if getattr(c, key) <= 0:
            raise _bad(key, getattr(c, key), "must be > 0")
    if c.size < 16 or c.size > 16384:
        raise _bad("size", c.size, "must be between 16 and 16384 pixels")
    if c.shape is not None and (len(c.shape) != 2 or min(c.shape) < 16 or max(c.shape) > 16384):
        raise _bad("shape", c.shape, "give (height, width), each between 16 and 16384")
    if c.start_size is not None and c.start_size < 16:
        raise _bad("start_size", c.start_size, "must be >= 16, or none for a single scale")
    if c.first_steps is not None and c.first_steps <= 0:
        raise _bad("first_steps", c.first_steps, "must be > 0, or none for 2 x steps")
    if not 0 <= c.seed < 2**63:
        raise _bad("seed", c.seed, "must be a whole number from 0 to 2**63 - 1")
    if c.tile_size and (c.tile_size < 64 or c.tile_size % 16):
        raise _bad("tile_size", c.tile_size, "must be 0 (no tiles) or a multiple of 16 of at least 64, e.g. 1024")
    if c.scale_steps is not None and (not c.scale_steps or min(c.scale_steps) <= 0):
        raise _bad("scale_steps", c.scale_steps, "give positive whole numbers, e.g. 200,100,50, or none")
    if c.save_every < 0:
        raise _bad("save_every", c.save_every, "must be >= 0 (0 = never)")
    if not (math.isfinite(c.scale_factor) and 1.05 <= c.scale_factor <= 4):
        raise _bad("scale_factor", c.scale_factor, "must be between 1.05 and 4")
    if not (math.isfinite(c.lr) and c.lr > 0):
        raise _bad("lr", c.lr, "must be a finite number > 0")
    for key in ("content_weight", "style_weight", "tv_weight"):
        v = getattr(c, key)
        if not (math.isfinite(v) and v >= 0):
            raise _bad(key, v, "must be a finite number >= 0")
    if not (math.isfinite(c.style_scale) and 0.05 <= c.style_scale <= 8):
        raise _bad("style_scale", c.style_scale, "must be between 0.05 and 8")
    if not c.content_layers and c.content_weight > 0:
        raise _bad("content_layers", c.content_layers, "give at least one layer (or set content_weight = 0)")
    if not c.style_layers:
        raise _bad("style_layers", c.style_layers, "give at least one layer")
    names = [n for n, _ in c.style_layers]
    if len(set(names)) != len(names):
        raise _bad("style_layers", ",".join(names), "each layer at most once")
    ws = [w for _, w in c.style_layers]
    if any(not math.isfinite(w) or w < 0 for w in ws) or sum(ws) <= 0:
        raise _bad("style_layers", dict(c.style_layers), "layer weights must be finite, >= 0 and not all 0")
    if c.style_blend is not None:
        b = c.style_blend
        if any(not math.isfinite(w) or w < 0 for w in b) or sum(b) <= 0:
            raise _bad("style_blend", ",".join(map(str, b)), "weights must be finite, >= 0 and not all 0")
    if c.ema is not None and not (0 < c.ema < 1):
        raise _bad("ema", c.ema, "must be between 0 and 1 (0.99 is good), or none")
    if c.tol is not None and not (0 < c.tol < 1):
        raise _bad("tol", c.tol, "must be between 0 and 1 (1e-3 is good), or none")
    if not c.init:
        raise _bad("init", c.init, "use content, noise or the path of an image")
    if c.preset is not None and c.preset not in PRESETS:
        raise _bad("preset", c.preset, f"choose one of {', '.join(PRESETS)}{suggest(c.preset, PRESETS)}")


def from_dict(data: Mapping[str, Any], *, base: StyleConfig | None = None) -> StyleConfig:
    """Build a config from plain values. A ``preset`` key applies that preset first; other keys override it."""
    data = dict(data)
    unknown = [k for k in data if k not in FIELD_NAMES]
    if unknown:
        k = unknown[0]
        raise ConfigError(f"unknown setting {k!r}{suggest(k, FIELD_NAMES)}; settings are: {', '.join(FIELD_NAMES)}")
    values: dict[str, Any] = base.to_dict() if base is not None else {}
    preset = data.get("preset")
    if preset is not None:
        if not isinstance(preset, str) or preset not in PRESETS:
            raise _bad("preset", preset, f"choose one of {', '.join(PRESETS)}{suggest(preset, PRESETS)}")
        values.update(PRESETS[preset])
    values.update(data)
    try:
        return StyleConfig(**values)
    except TypeError as e:  # a wrong type that coercion let through
        raise ConfigError(f"invalid config: {e}") from None


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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as e:
        line = p.read_bytes()[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {e.object[e.start]:#04x}); save the TOML file as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or type(e).__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"at line (\d+)", str(e))
        line = int(m.group(1)) if m else max(1, len(text.splitlines()))  # "at end of document": the last line
        raise ConfigError(f"{path}:{line}: TOML syntax error: {e}") from None
    data["__text__"] = text
    return data


def from_toml(path: str | Path, *, base: StyleConfig | None = None) -> StyleConfig:
    """A config from a TOML file of top-level keys (the same names as StyleConfig's fields)."""
    data = load_toml(path)
    text = data.pop("__text__")
    try:
        return from_dict(data, base=base)
    except ConfigError as e:
        for k in data:
            if k in str(e).split(" ", 3)[:3] or str(e).startswith((f"{k} ", f"{k}:")) or f"{k!r}" in str(e):
                line = key_line(text, k)
                if line:
                    raise ConfigError(f"{path}:{line}: {e}") from None
        raise ConfigError(f"{path}: {e}") from None


