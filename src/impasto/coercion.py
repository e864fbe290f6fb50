"""Setting values as people write them → one canonical value per type annotation of StyleConfig's fields.

Strings come from the CLI and web forms, lists and tables from TOML/JSON, tuples from Python: ``"300x400"``,
``[300, 400]`` and ``(300, 400)`` are the same ``tuple[int, int] | None``. A coercer takes (key, value) and returns the
canonical value or raises a one-line ConfigError that carries the key. Validation (ranges, choices, combinations)
is config.py's, after every field is coerced.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, NewType, get_origin

from .core.layers import resolve_layer
from .errors import ConfigError


def invalid(key: str, value: Any, allowed: str) -> ConfigError:
    """``key = value is invalid: allowed`` as a ConfigError about ``key``."""
    return ConfigError(f"{key} = {value!r} is invalid: {allowed}", key=key)


ImagePath = NewType("ImagePath", str)  # a field that names an image file or URL (masks), not a layer
Coercer = Callable[[str, Any], Any]
_NONE = (None, "", "none", "None")  # how "not set" is written for an optional field
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in _TRUE + _FALSE:
            raise invalid(key, value, "expected true or false")
        return value.lower() in _TRUE
    return bool(value)


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


def _str(key: str, value: Any) -> str:
    return str(value)  # a Literal field's choices are checked by config._validate, after every field is coerced


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
    tuple[ImagePath, ...] | None: _optional(_paths),
    tuple[tuple[str, float], ...]: _weighted_layers,
}


def coercer(name: str, hint: Any) -> Coercer:
    """The coercer for a field annotated ``hint``; a Literal's value is a string, checked against its choices later."""
    if get_origin(hint) is Literal:
        return _str
    if hint not in COERCERS:
        raise TypeError(f"StyleConfig.{name}: no coercion for {hint}; add one to coercion.COERCERS")
    return COERCERS[hint]
