"""StyleConfig's fields as command-line flags, both ways: argparse flags with grouped help from the field docs and
types, and the flags that rebuild a config (``impasto recipe``'s command, ``impasto presets``' table).

Plain data and argparse only (no torch): the CLI builds its parser from here before it imports anything heavy.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .config import FIELD_NAMES, PRESETS, StyleConfig, field_docs, from_dict, from_toml

# --help's groups, in order: the common settings, then the advanced ones. Every StyleConfig field is in exactly one
# (a test checks it), so a new field shows up where it belongs.
GROUPS = {
    "common": "common settings (flags override --config, which overrides --preset)",
    "schedule": "schedule (coarse to fine)",
    "optimiser": "optimiser",
    "losses": "losses",
    "masks": "masks (a style per region, the photo kept; see the docs' how-to: masks)",
    "layers": "network and layers (see 'impasto layers')",
    "print": "print size, tiles and memory",
    "devices": "devices and precision",
    "run": "the run",
}
FIELD_GROUPS = {
    "preset": "common", "size": "common", "size_side": "common", "steps": "common", "style_weight": "common",
    "content_weight": "common", "style_blend": "common", "preserve_color": "common", "strength": "common",
    "seed": "common",
    "shape": "schedule", "start_size": "schedule", "scale_factor": "schedule", "first_steps": "schedule",
    "scale_steps": "schedule", "tol": "schedule",
    "optimizer": "optimiser", "lr": "optimiser", "adam_beta2": "optimiser", "param": "optimiser", "init": "optimiser",
    "ema": "optimiser",
    "tv_weight": "losses", "temporal_weight": "losses", "loss_norm": "losses", "style_loss": "losses",
    "neighbour_mix": "losses", "neighbour_refresh": "losses", "neighbour_rarity": "losses", "neighbour_rotations": "losses",
    "style_scale": "losses", "style_fit": "losses",
    "content_layers": "layers", "style_layers": "layers", "pooling": "layers", "padding": "layers", "weights": "layers",
    "print_size": "print", "bit_depth": "print", "background": "print",
    "tile_size": "print", "checkpoint": "print", "max_pixels": "print",
    "device": "devices", "precision": "devices",
    "save_every": "run",
    "masks": "masks", "mask_colors": "masks", "keep_mask": "masks", "style_masks": "masks", "mask_rule": "masks",
    "mask_feather": "masks",
}  # within a group, in this order

# Placeholders that say more than the type's (N, X, VALUE); Literal fields show their choices, booleans are flags.
METAVARS = {
    "size": "PX", "start_size": "PX", "tile_size": "PX", "shape": "HxW", "scale_steps": "N,N,...",
    "style_blend": "W,W,...", "content_layers": "LAYER,...", "style_layers": "LAYER:W,...",
    "init": "{content,noise,gaussian}|FILE", "weights": "{bundled,torchvision}|FILE",
    "device": "{auto,cpu,cuda,cuda:N,mps}",
    "print_size": "WxHUNIT@DPI", "bit_depth": "{8,16}", "background": "COLOUR",
    "masks": "MASK", "mask_colors": "IMAGE", "keep_mask": "MASK", "style_masks": "MASK|none",
}
NARGS = {"masks": "+", "style_masks": "+"}  # one value per style image: --masks sky.png bridge.png
ALIASES = {"print_size": ("--print",)}  # the short form the docs use: --print 30x40cm@300dpi
_TYPE_METAVARS = {int: "N", float: "X", str: "VALUE"}
_HINTS = get_type_hints(StyleConfig)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def number(v: float) -> str:
    """A float as people write it (0.02, 1e+06), exact: the shortest form that reads back as the same number."""
    short = f"{v:g}"
    return short if float(short) == v else repr(v)


def shown_default(value: Any) -> str:
    """A default as --help shows it: none, √2 ≈ 1.414, relu1_1:1,relu2_1:1, off."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return "√2 ≈ 1.414" if math.isclose(value, math.sqrt(2)) else number(value)
    return flag_value(value)


def flag_value(value: Any) -> str:
    """A setting's value as its flag takes it: the inverse of the config's coercion (also for JSON from a recipe)."""
    if value is None:
        return "none"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{number(float(w))}" for k, w in value.items())
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in value):  # (layer, weight) pairs
            return flag_value(dict(value))
        return ",".join(flag_value(x) for x in value)
    return str(value)


def help_text(doc: str) -> str:
    """A field's docstring as --help text: no reST markup, none as the CLI writes it, % escaped for argparse."""
    text = re.sub(r"``(.+?)``", r"\1", doc)
    return re.sub(r"\bNone\b", "none", text).replace("%", "%%")


def _position(name: str) -> tuple[int, int]:
    """Where a field's flag goes: its group, then FIELD_GROUPS's order; one missing from it goes last (a test
    fails)."""
    order = list(FIELD_GROUPS)
    group = FIELD_GROUPS.get(name, "run")
    return list(GROUPS).index(group), order.index(name) if name in order else len(order)


def config_groups(p: argparse.ArgumentParser) -> dict[str, Any]:
    """GROUPS as argument groups of ``p``, in order (a command adds its own flags to them before the settings)."""
    return {key: p.add_argument_group(title) for key, title in GROUPS.items()}


def add_config_flags(groups: Mapping[str, Any]) -> None:
    """One flag per StyleConfig field, defaulting to None (= not given), in its group of FIELD_GROUPS."""
    docs, defaults = field_docs(), StyleConfig()
    for name in sorted(FIELD_NAMES, key=_position):
        g, hint, doc = groups[FIELD_GROUPS.get(name, "run")], _HINTS[name], help_text(docs.get(name, ""))
        if name == "preset":
            g.add_argument("--preset", choices=sorted(PRESETS), help="start from a named recipe (see 'impasto presets')")
            g.add_argument("--config", metavar="FILE.toml", help="settings from a TOML file")
            continue
        shown = f" [default: {shown_default(getattr(defaults, name))}]"
        if hint is bool:
            g.add_argument(flag_name(name), dest=name, default=None, action=argparse.BooleanOptionalAction,
                           help=doc + shown)
            continue
        if get_origin(hint) is Literal:  # the choices are shown here and checked by the config (with a suggestion)
            metavar = "{" + ",".join(get_args(hint)) + "}"
        else:
            base = next((a for a in get_args(hint) if a is not type(None)), hint)  # int | None → int
            metavar = METAVARS.get(name) or _TYPE_METAVARS.get(base) or name.upper()
        g.add_argument(flag_name(name), *ALIASES.get(name, ()), dest=name, default=None, metavar=metavar,
                       nargs=NARGS.get(name), help=doc + shown)


def config_from_args(args: argparse.Namespace) -> StyleConfig:
    base = None
    if getattr(args, "config", None):
        base = from_toml(args.config)
    given = {name: getattr(args, name) for name in FIELD_NAMES if getattr(args, name, None) is not None}
    if given.get("preset") is None and getattr(args, "preset", None):
        given["preset"] = args.preset
    if base is not None:
        return base.replace(**given) if given else base
    return from_dict(given)


def config_flags(values: Mapping[str, Any], base: StyleConfig | None = None) -> list[str]:
    """The flags that turn ``base`` (impasto's defaults) into ``values`` (a config's to_dict, or a recipe's JSON):
    only what differs, booleans as flags. The device is left out: a repeat runs on the machine at hand."""
    ref = json.loads(json.dumps((base or StyleConfig()).to_dict()))  # tuples → lists, as in a recipe
    words: list[str] = []
    for name in FIELD_NAMES:
        if name in ("preset", "device") or name not in values:
            continue
        v = json.loads(json.dumps(values[name]))
        if v == ref.get(name):
            continue
        if isinstance(v, bool):
            words.append(flag_name(name) if v else "--no-" + name.replace("_", "-"))
        else:
            words += [flag_name(name), *([flag_value(x) for x in v] if name in NARGS and v else [flag_value(v)])]
    return words
