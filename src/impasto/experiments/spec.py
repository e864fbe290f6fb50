"""Experiment files: a ``[base]`` config plus named ``[[variant]]`` tables and/or ``[grid]`` axes → named configs.

```toml
[experiment]            # optional: a title, a description, default inputs (paths relative to this file)
title = "Style weight vs learning rate"
content = "photo.jpg"
styles = ["starry.jpg"]

[base]                  # the same keys as StyleConfig / the CLI flags; a preset first, then these keys
preset = "gatys-adam"
steps = 1000

[[variant]]             # named variants override base keys (a table value replaces the base's, it is not merged)
name = "strong"
note = "what this variant tests"
style_weight = 5e6

[grid]                  # axes: their cartesian product runs (on top of each variant, when there are both)
lr = [0.001, 0.003]

[findings]              # optional: the findings table (claims.py: a baseline, thresholds, the variants' claims)
baseline = "strong"
```

With variants and a grid, every variant runs at every grid point (``strong[lr=0.001]``, ...). With neither, the
base runs alone. Every error names the file, the line, the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..coercion import shown
from ..config import FIELD_NAMES, StyleConfig, from_dict, key_line, load_toml, suggest
from ..errors import ConfigError
from .claims import CLAIM_KEYS, FindingsSpec, parse_findings

TABLES = ("experiment", "base", "variant", "grid", "findings")
EXPERIMENT_KEYS = ("title", "description", "content", "styles")
VARIANT_META = ("name", "note", *CLAIM_KEYS)
MAX_VARIANTS = 1000  # a sweep's variants, counted before any is built; load_experiment(max_variants=) raises it
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_][A-Za-z0-9_. -]*?)\s*\]\]?\s*(?:#.*)?$")
_SLUG_BAD = re.compile(r"[^A-Za-z0-9._,=+\[\]-]+")


@dataclass(frozen=True)
class Variant:
    """One run of a sweep: a name, the keys it sets on top of base, and the resulting config."""

    name: str
    overrides: dict[str, Any]
    config: StyleConfig
    note: str = ""
    line: int | None = None  # where it is defined in the file (for messages)
    origin: str = ""  # the [[variant]] it comes from ("" for the base alone)
    point: str = ""  # its grid point, "lr=0.001,seed=0" ("" without a grid)


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file."""

    name: str  # the file's stem: the default output folder and the report's fallback title
    base: StyleConfig
    variants: tuple[Variant, ...]
    title: str = ""
    description: str = ""
    content: str | None = None  # default inputs from [experiment], already resolved against the file's folder
    styles: tuple[str, ...] = ()
    path: Path | None = None
    text: str = field(default="", repr=False)
    findings: FindingsSpec | None = None  # [findings]: the baseline, thresholds and claims (claims.py)

    def with_overrides(self, **changes: Any) -> Experiment:
        """The same experiment with some keys set on base and on every variant (the CLI's ``--size``, ``--steps``)."""
        if not changes:
            return self
        unknown = [k for k in changes if k not in FIELD_NAMES]
        if unknown:
            raise ConfigError(f"unknown setting {unknown[0]!r}{suggest(unknown[0], FIELD_NAMES)}", key=unknown[0])
        base = self.base.replace(**changes)
        variants = tuple(overridden(v, v.config.replace(**changes)) for v in self.variants)
        return dataclasses.replace(self, base=base, variants=variants)

    def __getitem__(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        names = [v.name for v in self.variants]
        raise KeyError(f"no variant {name!r}{suggest(name, names)}")


def overridden(v: Variant, cfg: StyleConfig) -> Variant:
    """``v`` on ``cfg``; where an override replaced a value that the variant set itself or that its note states
    (train4's "2000 steps" under --steps 100), the note first says what ran: it is the sheet's first line."""
    def said(x: Any) -> str:
        return f"{x:g}" if isinstance(x, float) else str(x)

    gone = [(k, said(getattr(v.config, k)), said(getattr(cfg, k))) for k in FIELD_NAMES
            if getattr(v.config, k) != getattr(cfg, k)]
    gone = [(k, a, b) for k, a, b in gone
            if k in v.overrides or re.search(rf"(?<![\w.]){re.escape(a)}(?!\w|\.\d)", v.note)]
    ran = ", ".join(f"{k} = {b}, not {a}" for k, a, b in gone)
    return dataclasses.replace(v, config=cfg, note=f"[ran {ran}] {v.note}".strip() if ran else v.note)


def load_experiment(path: str | os.PathLike[str], *, max_variants: int = MAX_VARIANTS) -> Experiment:
    """Read and check an experiment file (TOML); more than ``max_variants`` variants is an error."""
    data = load_toml(Path(path))
    text = data.pop("__text__")
    return parse_experiment(data, text=text, path=Path(path), max_variants=max_variants)


def parse_experiment(data: Mapping[str, Any], *, text: str = "", path: Path | None = None,
                     max_variants: int = MAX_VARIANTS) -> Experiment:
    """Check a parsed experiment (a dict as from TOML) and build every variant's config.

    ``text`` (the file's source) lets errors name their line. The variants are counted before any is built: more
    than ``max_variants`` is an error, at once, however large the grid.
    """
    where = _Locator(text, str(path) if path is not None else "<experiment>")
    _check_tables(data, where)
    _check_count(data, where, max_variants)
    meta = _table(data, "experiment", where)
    content, styles = _inputs(meta, path.parent if path is not None else Path("."), where)
    base_values = _table(data, "base", where)
    _check_keys(base_values, ("base", 0), where, allowed=FIELD_NAMES)
    base = _build({}, base_values, ("base", 0), where, "[base]")
    named = _named_variants(data, base_values, where)
    axes = _grid_axes(data, base_values, where)
    swept = {k for k, _ in axes}
    for v in named:
        both = [k for k in v.overrides if k in swept]
        if both:
            raise where.error(("variant", v.index), both[0], f"variant {v.name!r} sets {both[0]}, which [grid] also "
                              "sweeps; set it in one place only")
    variants = _expand(named, axes, base_values, where)
    return Experiment(
        name=path.stem if path is not None else "sweep", base=base, variants=variants,
        title=str(meta.get("title", "")), description=str(meta.get("description", "")),
        content=content, styles=styles, path=path, text=text,
        findings=parse_findings(data, [(v.name, v.index) for v in named], where),
    )


def describe_value(key: str, value: Any, base: Any = None) -> str:
    """A short, readable form of a setting's value for names and labels: ``1e+06``, ``0.5/0.4/0.5``, ``relu5_2``.

    Style layers are written as their weights alone when the layer names are the base's.
    """
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if key == "style_layers" and isinstance(value, Mapping):
        if isinstance(base, Mapping) and list(base) == list(value):
            return "/".join(f"{w:g}" for w in value.values())
        return ",".join(f"{n}:{w:g}" for n, w in value.items())
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{describe_value('', v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        sep = "/" if key == "style_blend" else ","
        return sep.join(describe_value("", v) for v in value)
    return str(value)


def differences(config: StyleConfig, base: StyleConfig) -> dict[str, Any]:
    """The settings where ``config`` differs from ``base`` (as ``to_dict`` values), in field order."""
    a, b = config.to_dict(), base.to_dict()
    return {k: a[k] for k in FIELD_NAMES if a[k] != b[k] and k != "preset"}


def slug(name: str) -> str:
    """A file-name-safe form of a variant name (stable: it names the variant's files)."""
    s = _SLUG_BAD.sub("-", name).strip("-.") or "variant"
    if len(s) > 96:
        import hashlib

        s = f"{s[:80]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return s


# -- helpers ---------------------------------------------------------------------------------------------------------
def _check_count(data: Mapping[str, Any], where: _Locator, limit: Any) -> None:
    """Count the variants from the tables' sizes alone (a 100x100x100 grid is a million points: refuse it before
    building one) and refuse more than ``limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"max_variants = {shown(limit)} is invalid: give a whole number, 1 or more", key="max_variants")
    raw = data.get("variant", [])
    named = len(raw) if isinstance(raw, list) else 1
    grid = data.get("grid", {})
    axes = [(k, len(v)) for k, v in grid.items() if isinstance(v, list)] if isinstance(grid, Mapping) else []
    total = max(1, named) * math.prod(max(1, n) for _, n in axes)
    if total <= limit:
        return
    parts = ([f"{named:,} [[variant]] tables"] if named > 1 else []) + (
        [" x ".join(f"{n:,} {k}" for k, n in axes) + " grid points"] if axes else [])
    raise where.error(("grid", 0) if axes else None, None if axes else "variant",
                      f"{total:,} variants ({' at '.join(parts)}), over the limit of {limit:,}; cut the grid or the "
                      f"variants, or raise the limit (impasto sweep --max-variants N; impasto.sweep(..., "
                      "max_variants=N))")


class _Named(NamedTuple):
    """A [[variant]] table as written: its name, its number in the file (from 0), its keys, note and header line."""

    name: str
    index: int
    overrides: dict[str, Any]
    note: str
    line: int | None


def _check_tables(data: Mapping[str, Any], where: _Locator) -> None:
    for table, value in data.items():
        if table in TABLES:
            continue
        if isinstance(value, Mapping):
            raise where.error(None, table, f"unknown table [{table}]{suggest(table, TABLES)}; an experiment has "
                              "[experiment], [base], [[variant]], [grid] and [findings]")
        hint = "[base]" if table in FIELD_NAMES else "[experiment]" if table in EXPERIMENT_KEYS else "a table"
        raise where.error(None, table, f"{table} is outside any table; put it under {hint} (an experiment has "
                          "[experiment], [base], [[variant]], [grid] and [findings])")


def _inputs(meta: Mapping[str, Any], folder: Path, where: _Locator) -> tuple[str | None, tuple[str, ...]]:
    """[experiment]'s content and styles, resolved against the file's folder."""
    for k in meta:
        if k not in EXPERIMENT_KEYS:
            raise where.error(("experiment", 0), k, f"unknown key {k!r} in [experiment]{suggest(k, EXPERIMENT_KEYS)}; "
                              f"allowed: {', '.join(EXPERIMENT_KEYS)}")
    content = _resolve(meta.get("content"), folder, where, "content")
    styles_raw = meta.get("styles", [])
    if isinstance(styles_raw, str):
        styles_raw = [styles_raw]
    if not isinstance(styles_raw, list):
        raise where.error(("experiment", 0), "styles", "styles must be a list of image paths")
    return content, tuple(_resolve(s, folder, where, "styles") or "" for s in styles_raw)


def _named_variants(data: Mapping[str, Any], base_values: Mapping[str, Any], where: _Locator) -> list[_Named]:
    raw_variants = data.get("variant", [])
    if isinstance(raw_variants, Mapping):
        raise where.error(None, "variant", "write variants as [[variant]] (double brackets), one table per variant")
    if not isinstance(raw_variants, list) or not all(isinstance(v, Mapping) for v in raw_variants):
        raise where.error(None, "variant", "variant must be an array of tables: [[variant]] then its keys")
    named: list[_Named] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_variants):
        loc = ("variant", i)
        _check_keys(raw, loc, where, allowed=FIELD_NAMES + VARIANT_META)
        name = raw.get("name", f"variant{i + 1}")
        if not isinstance(name, str) or not name.strip():
            raise where.error(loc, "name", f"name = {name!r} is invalid: give a non-empty string")
        name = name.strip()
        if name in seen:
            raise where.error(loc, "name", f"name = {name!r} is used twice (variants {seen[name] + 1} and {i + 1}); "
                              "give each variant its own name")
        seen[name] = i
        note = raw.get("note", "")
        if not isinstance(note, str):
            raise where.error(loc, "note", "note must be a string")
        overrides = {k: v for k, v in raw.items() if k not in VARIANT_META}
        _build(base_values, overrides, loc, where, f"variant {name!r}")  # alone first: errors name it, not a point
        named.append(_Named(name, i, overrides, note, where.header_line(loc)))
    return named


def _grid_axes(data: Mapping[str, Any], base_values: Mapping[str, Any], where: _Locator) -> list[tuple[str, list[Any]]]:
    grid = _table(data, "grid", where)
    _check_keys(grid, ("grid", 0), where, allowed=FIELD_NAMES)
    axes: list[tuple[str, list[Any]]] = []
    for k, values in grid.items():
        if not isinstance(values, list) or not values:
            raise where.error(("grid", 0), k, f"grid axis {k} = {values!r} must be a non-empty list of values, "
                              f"e.g. {k} = [{_example(k)}]")
        for v in values:  # each value on its own first, so the message names the axis, not a combination
            _build(base_values, {k: v}, ("grid", 0), where, f"[grid] {k} = {describe_value(k, v)}")
        axes.append((k, values))
    return axes


def _expand(named: list[_Named], axes: list[tuple[str, list[Any]]], base_values: Mapping[str, Any],
            where: _Locator) -> tuple[Variant, ...]:
    """Every variant at every grid point (the base alone when there are no variants), with file-safe names."""
    variants: list[Variant] = []
    points = list(itertools.product(*[[(k, v) for v in vs] for k, vs in axes])) if axes else [()]
    for v in named or [_Named("base", 0, {}, "", where.header_line(("base", 0)))]:
        loc = ("variant", v.index) if named else ("base", 0)
        for point in points:
            changes = {**v.overrides, **dict(point)}
            label = ",".join(f"{k}={describe_value(k, x)}" for k, x in point)
            full = v.name if not label else (f"{v.name}[{label}]" if named else label)
            what = f"variant {full!r}" if named or label else "[base]"
            cfg = _build(base_values, changes, loc, where, what)
            variants.append(Variant(full, changes, cfg, v.note, v.line, v.name if named else "", label))
    slugs: dict[str, str] = {}
    for v in variants:
        s = slug(v.name)
        if s in slugs:
            raise where.error(None, "name", f"variants {slugs[s]!r} and {v.name!r} would share the file name {s!r}; "
                              "rename one")
        slugs[s] = v.name
    return tuple(variants)


def _table(data: Mapping[str, Any], name: str, where: _Locator) -> dict[str, Any]:
    t = data.get(name, {})
    if not isinstance(t, Mapping):
        raise where.error(None, name, f"{name} must be a table: write [{name}] and put its keys under it")
    return dict(t)


def _check_keys(table: Mapping[str, Any], loc: tuple[str, int], where: _Locator, *, allowed: tuple[str, ...]) -> None:
    for k in table:
        if k not in allowed:
            raise where.error(loc, k, f"unknown setting {k!r}{suggest(k, allowed)}; allowed: {', '.join(allowed)}")


def _build(base: Mapping[str, Any], changes: Mapping[str, Any], loc: tuple[str, int], where: _Locator,
           what: str) -> StyleConfig:
    """base + changes → StyleConfig; an error names the key it is about (``ConfigError.key``) and its line."""
    try:
        values = dict(base)
        if changes.get("preset") not in (None, base.get("preset")):
            values = {}  # a variant that names another preset starts again from it (like StyleConfig.replace)
        return from_dict({**values, **changes})
    except ConfigError as e:
        if e.key is not None and e.key not in changes:
            loc = ("base", 0)  # the base's own value is what is wrong (or clashes with this variant)
        raise where.error(loc, e.key, f"{what}: {e}") from None


def _resolve(value: Any, folder: Path, where: _Locator, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise where.error(("experiment", 0), key, f"{key} must be an image path or URL (a string)")
    if value.startswith(("http://", "https://")) or Path(value).is_absolute():
        return value
    return str(folder / value)


def _example(key: str) -> str:
    return {"lr": "0.001, 0.003", "style_weight": "1e4, 1e5, 1e6", "seed": "0, 1, 2",
            "content_layers": '"relu4_2", "relu5_2"'}.get(key, "value1, value2")


class _Locator:
    """Finds the line of a key inside a given table of the TOML source, for error messages."""

    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines = text.splitlines()
        # (table, n) → [(first, last, subtable key or "")], 1-based lines; [[variant]] number n counts from 0.
        self.sections: dict[tuple[str, int], list[tuple[int, int, str]]] = {}
        counts: dict[str, int] = {}
        heads = [(n, m) for n, line in enumerate(self.lines, start=1) if (m := _HEADER.match(line))]
        for i, (n, m) in enumerate(heads):
            parts = [p.strip() for p in m.group(2).split(".")]
            top, sub = parts[0], parts[-1] if len(parts) > 1 else ""
            if not sub:
                counts[top] = counts.get(top, -1) + 1 if m.group(1) == "[[" else 0
            last = heads[i + 1][0] - 1 if i + 1 < len(heads) else len(self.lines)
            self.sections.setdefault((top, max(counts.get(top, 0), 0)), []).append((n, last, sub))

    def header_line(self, loc: tuple[str, int]) -> int | None:
        spans = self.sections.get(loc)
        return spans[0][0] if spans else None

    def key_line(self, loc: tuple[str, int] | None, key: str | None) -> int | None:
        if loc is None:  # a top-level name: a table header such as [foo], or a key before any table
            for (top, _), spans in self.sections.items():
                if top == key:
                    return spans[0][0]
            return key_line("\n".join(self.lines), key) if key else None
        if key is None:
            return self.header_line(loc)
        for first, last, sub in self.sections.get(loc, []):
            if sub == key:
                return first  # [variant.style_layers]
            if sub:
                continue
            found = key_line("\n".join(self.lines[first - 1:last]), key)
            if found is not None:
                return first + found - 1
        return self.header_line(loc)

    def error(self, loc: tuple[str, int] | None, key: str | None, message: str) -> ConfigError:
        line = self.key_line(loc, key)
        prefix = f"{self.filename}:{line}" if line else self.filename
        return ConfigError(f"{prefix}: {message}", key=key)
