"""Setting values as people write them → one canonical value per type annotation of StyleConfig's fields.

Strings come from the CLI and web forms, lists and tables from TOML/JSON, tuples from Python: ``"300x400"``,
``[300, 400]`` and ``(300, 400)`` are the same ``tuple[int, int] | None``. A coercer takes (key, value) and returns the
canonical value or raises a one-line ConfigError that carries the key. Validation (ranges, choices, combinations)
is config.py's, after every field is coerced.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal, NewType, get_args, get_origin

from .core.layers import resolve_layer
from .errors import ConfigError


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """``key = value is invalid: allowed`` as a ConfigError about ``key``."""
    return ConfigError(f"{key} = {shown(value)} is invalid: {allowed}", key=key)


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message, at most ``limit`` characters: a 5000-digit number, a list of 100,000 items or
    a value nested 10,000 deep is named, not printed (and their repr may raise)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<a number of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # int digits over sys.get_int_max_str_digits(); nesting
        return f"<a {type(value).__name__} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


ImagePath = NewType("ImagePath", str)  # a field that names an image file or URL (masks), not a layer
Spec = NewType("Spec", str)  # a setting written in its own small grammar (a colour, a print size); none: not set
Coercer = Callable[[str, Any], Any]
_NONE = (None, "", "none", "None")  # how "not set" is written for an optional field
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in _TRUE + _FALSE:
            raise invalid(key, value, "expected true or false")
        return value.lower() in _TRUE
    if isinstance(value, (bool, int, float)) and value in (0, 1):  # True, 1, numpy's bools
        return bool(value)
    raise invalid(key, value, "expected true or false")


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise invalid(key, value, "expected a whole number")
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid(key, value, "expected a whole number") from None
    if not math.isfinite(f) or f != int(f):
        raise invalid(key, value, "expected a whole number")
    return int(f)


def _float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise invalid(key, value, "expected a number")
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise invalid(key, value, "expected a number") from None


# What a text field takes, for the message when it is given something else (None, a number, a tensor).
_TEXT_HINTS = {"init": "content, noise, gaussian or the path of an image",
               "weights": "bundled, torchvision or the path of a state dict",
               "device": "auto, cpu, cuda, cuda:N or mps"}


def _str(key: str, value: Any) -> str:
    """Text as given; a path object as its path; a torch.device as its name. Anything else (None, a number, a
    tensor) is refused rather than turned into a string such as 'None' that would later be read as a file name."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    torch = sys.modules.get("torch")  # a torch.device can only exist once torch is imported
    if torch is not None and isinstance(value, torch.device):
        return str(value)
    hint = _TEXT_HINTS.get(key, "a string")
    if value is None:
        raise invalid(key, value, f"give {hint} (leave {key} out for its default)")
    raise invalid(key, value, f"expected text, not {type(value).__name__}; give {hint}")


def _choice(choices: tuple[Any, ...]) -> Coercer:
    """A Literal field: a string, checked against its choices by config._validate once every field is coerced."""

    def coerce(key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise invalid(key, value, f"choose one of {', '.join(map(str, choices))}")
        return value

    return coerce


def _shape(key: str, value: Any) -> tuple[int, int]:
    parts = value.lower().replace("x", ",").split(",") if isinstance(value, str) else value  # "300x400"
    if not isinstance(parts, (list, tuple)) or len(parts) != 2:
        raise invalid(key, value, "give HEIGHTxWIDTH, e.g. 300x400")
    try:
        return (_int(key, parts[0]), _int(key, parts[1]))
    except ConfigError:
        raise invalid(key, value, "give HEIGHTxWIDTH in whole pixels, e.g. 300x400") from None


def _numbers(element: Coercer, example: str) -> Coercer:
    """A coercer for ``tuple[int, ...]`` / ``tuple[float, ...]``: "200,100,50", "0.2 0.8", [0.2, 0.8]."""

    def coerce(key: str, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, (str, list, tuple)):
            raise invalid(key, value, f'give {example}')
        parts = re.split(r"[,\s]+", value.strip()) if isinstance(value, str) else value
        return tuple(element(key, p) for p in parts)

    return coerce


def _layer(key: str, name: Any) -> str:
    try:
        return resolve_layer(name)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}", key=key) from None


def _layers(key: str, value: Any) -> tuple[str, ...]:
    """"relu4_2" | "relu3_1,relu4_2" | ["relu4_2", 21] → layer names."""
    if not isinstance(value, (str, list, tuple)):
        raise invalid(key, value, 'give layer names: "relu4_2" or "relu3_1,relu4_2"')
    names = value.split(",") if isinstance(value, str) else value
    return tuple(_layer(key, n) for n in names if str(n).strip())


def _weighted_layers(key: str, value: Any) -> tuple[tuple[str, float], ...]:
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
                raise invalid(key, value, 'give (layer, weight) pairs, "relu1_1:1.0,relu2_1:0.75" or a table')
            items.append(tuple(item) if isinstance(item, (list, tuple)) else (item, 1.0))  # type: ignore[arg-type]
    else:
        raise invalid(key, value, 'give "relu1_1:1.0,relu2_1:0.75", a list of layer names or a table')
    return tuple((_layer(key, name), _float(key, w)) for name, w in items)


def _paths(key: str, value: Any) -> tuple[str, ...] | None:
    """"sky.png,bridge.png" | ["sky.png", "bridge.png"] → image paths; "none" (or "") for a missing one; ["none"]
    (what ``--masks none`` gives) is None."""
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or not parts:
        raise invalid(key, value, 'give image paths: "sky.png,bridge.png" or a list of them')
    if len(parts) == 1 and (parts[0] is None or (isinstance(parts[0], str) and parts[0].strip() in _NONE)):
        return None
    return tuple("none" if p is None or (isinstance(p, str) and p.strip() in _NONE) else _str(key, p).strip()
                 for p in parts)


def _optional(coerce: Coercer, none: tuple[Any, ...] = _NONE) -> Coercer:
    return lambda key, value: None if value in none else coerce(key, value)


# One coercer per annotation StyleConfig uses; a field with a new annotation fails at import until it gets one here.
COERCERS: dict[Any, Coercer] = {
    bool: _bool,
    int: _int,
    int | None: _optional(_int),
    float: _float,
    float | None: _optional(_float, none=(*_NONE, 0, "0")),  # the optional fractions (ema, tol): 0 is off as well
    str: _str,
    str | None: _optional(_str, none=(None,)),
    tuple[int, int] | None: _optional(_shape),
    tuple[int, ...] | None: _optional(_numbers(_int, 'whole numbers, e.g. "200,100,50"')),
    tuple[float, ...] | None: _optional(_numbers(_float, 'numbers, e.g. "0.3,0.7"')),
    tuple[str, ...]: _layers,
    ImagePath | None: _optional(_str),
    Spec | None: _optional(_str),
    tuple[ImagePath, ...] | None: _optional(_paths),
    tuple[tuple[str, float], ...]: _weighted_layers,
}


def coercer(name: str, hint: Any) -> Coercer:
    """The coercer for a field annotated ``hint``; a Literal's value is a string, checked against its choices later."""
    if get_origin(hint) is Literal:
        return _choice(get_args(hint))
    if hint not in COERCERS:
        raise TypeError(f"StyleConfig.{name}: no coercion for {hint}; add one to coercion.COERCERS")
    return COERCERS[hint]
