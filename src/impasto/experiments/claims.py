"""What a study claimed about its variants, read from an experiment file (checked on the meter in findings.py).

```toml
[findings]                  # asks for the findings table; every key but baseline is optional
baseline = "train1"         # each variant is compared with this [[variant]]
margin = 0.02               # a distance or loss counts as lower/higher when it moves by more than 2% of the baseline's
differs = 0.02              # two pictures differ when their mean absolute pixel difference (0-1) is above this
meter_size = 400            # the meter's long side in pixels, the same for every variant
report_every = 400          # the study printed its loss every N steps: impasto's totals at those steps are shown

[[variant]]
name = "train3"
claim = "more oil-painting, loses detail"      # the study's words
expect = ["more-style", "less-content"]          # the same claim, as checks (the vocabulary below)
claims = [{ by = "issue 11", claim = "...", expect = ["differs"] }]   # further claims, from other sources
report_losses = [15159387.0, 9810742.0]          # the study's own printed total losses, shown beside impasto's
```

Every check compares the variant with the baseline at the same grid point, except ``differs-from:NAME`` and
``similar-to:NAME``, which compare it with another [[variant]].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..coercion import shown
from ..config import suggest
from ..errors import ConfigError

FINDINGS_KEYS = ("baseline", "margin", "differs", "meter_size", "report_every")
CLAIM_KEYS = ("claim", "expect", "claims", "report_losses")  # a [[variant]]'s keys that are not settings
MEASURES = ("style", "style14", "content", "colour")
_CLOSER = {"style": "style distance", "style14": "style distance over relu1_1-relu4_1",
           "content": "content distance", "colour": "colour distance (to the style's palette)"}
WORDS: dict[str, str] = {  # each word and what it checks, against the baseline unless it names a variant
    **{f"more-{m}": f"{d} lower than the baseline's" for m, d in _CLOSER.items()},
    **{f"less-{m}": f"{d} higher than the baseline's" for m, d in _CLOSER.items()},
    "lower-loss": "final total loss lower than the baseline's",
    "higher-loss": "final total loss higher than the baseline's",
    "steadier": "the total loss rose at a smaller share of steps than the baseline's did",
    "differs": "mean pixel difference from the baseline's picture above the differs threshold",
    "similar": "mean pixel difference from the baseline's picture at most the differs threshold",
    "differs-from:NAME": "mean pixel difference from variant NAME's picture above the differs threshold",
    "similar-to:NAME": "mean pixel difference from variant NAME's picture at most the differs threshold",
}
RELATIVE = ("differs-from", "similar-to")  # the words that name another variant: differs-from:NAME
CLAIM_TABLE_KEYS = ("by", "claim", "expect")


class Locator(Protocol):
    def error(self, loc: tuple[str, int] | None, key: str | None, message: str) -> ConfigError: ...


@dataclass(frozen=True)
class Claim:
    """One claim about a variant: the words (``text``), who made it and the checks that stand for it."""

    text: str
    expect: tuple[str, ...] = ()
    by: str = "report"


@dataclass(frozen=True)
class FindingsSpec:
    """The file's [findings] table and every [[variant]]'s claims and printed losses, by [[variant]] name."""

    baseline: str
    margin: float = 0.02
    differs: float = 0.02
    meter_size: int = 400
    report_every: int | None = None
    claims: Mapping[str, tuple[Claim, ...]] = field(default_factory=dict)
    report_losses: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


def other_variant(word: str) -> str | None:
    """``differs-from:train7a`` → ``train7a``; a word naming no variant → None."""
    head, sep, name = word.partition(":")
    return name if sep and head in RELATIVE else None


def parse_findings(data: Mapping[str, Any], named: Sequence[tuple[str, int]], where: Locator) -> FindingsSpec | None:
    """[findings] and the variants' claim keys → a FindingsSpec (None when the file asks for no findings).

    ``named``: each [[variant]]'s name and number in the file (from 0); their tables are ``data["variant"]``."""
    raw_variants = data.get("variant", [])
    tables = {name: raw_variants[i] for name, i in named}
    index = dict(named)
    table = data.get("findings")
    if table is None:
        for name, i in named:
            for k in CLAIM_KEYS:
                if k in tables[name]:
                    raise where.error(("variant", i), k, f"variant {name!r} sets {k}, but the file has no [findings] "
                                      'table; add [findings] with baseline = "NAME", the variant to compare against')
        return None
    loc = ("findings", 0)
    if not isinstance(table, Mapping):
        raise where.error(None, "findings", "findings must be a table: write [findings] and put its keys under it")
    for k in table:
        if k not in FINDINGS_KEYS:
            raise where.error(loc, k, f"unknown key {k!r} in [findings]{suggest(k, FINDINGS_KEYS)}; allowed: "
                              f"{', '.join(FINDINGS_KEYS)}")
    baseline = table.get("baseline")
    names = [n for n, _ in named]
    if not isinstance(baseline, str) or baseline not in index:
        hint = suggest(baseline, names) if isinstance(baseline, str) else ""
        what = "is missing" if baseline is None else f"= {shown(baseline)} is not a [[variant]]'s name{hint}"
        raise where.error(loc, "baseline" if baseline is not None else None,
                          f"[findings] baseline {what}: give the name of the variant every other is compared with"
                          + (f" ({', '.join(names[:8])})" if names else "; the file has no [[variant]] tables"))
    spec = FindingsSpec(
        baseline=baseline,
        margin=_number(table, "margin", 0.02, 0.0, 1.0, where, "a fraction of the baseline's value, e.g. 0.02"),
        differs=_number(table, "differs", 0.02, 0.0, 1.0, where, "a mean pixel difference on 0-1 RGB, e.g. 0.02"),
        meter_size=int(_whole(table, "meter_size", 400, 16, where)),
        report_every=_whole(table, "report_every", None, 1, where),
    )
    claims: dict[str, tuple[Claim, ...]] = {}
    losses: dict[str, tuple[float, ...]] = {}
    for name, i in named:
        raw, vloc = tables[name], ("variant", i)
        found = _claims(raw, vloc, where)
        for c, key in found:
            for word in c.expect:
                _check_word(word, name, baseline, index, vloc, key, where)
        if found:
            claims[name] = tuple(c for c, _ in found)
        if "report_losses" in raw:
            losses[name] = _losses(raw["report_losses"], vloc, where)
    return dataclasses.replace(spec, claims=claims, report_losses=losses)


def _number(table: Mapping[str, Any], key: str, default: float, low: float, high: float, where: Locator,
            hint: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
        raise where.error(("findings", 0), key, f"[findings] {key} = {shown(value)} is invalid: give a number from "
                          f"{low:g} up to (not including) {high:g}: {hint}")
    return float(value)


def _whole(table: Mapping[str, Any], key: str, default: int | None, low: int, where: Locator) -> int | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 100_000:
        raise where.error(("findings", 0), key, f"[findings] {key} = {shown(value)} is invalid: give a whole number "
                          f"from {low} to 100000")
    return value


def _text(value: Any, key: str, loc: tuple[str, int], where: Locator, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(loc, key, f"{what} = {shown(value)} is invalid: give a non-empty string")
    return value.strip()


def _expect(value: Any, loc: tuple[str, int], where: Locator, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise where.error(loc, key, f'expect = {shown(value)} is invalid: give a list of words, e.g. expect = '
                          f'["more-style", "less-content"] (words: {", ".join(WORDS)})')
    return tuple(w.strip() for w in value)


def _claims(raw: Mapping[str, Any], loc: tuple[str, int], where: Locator) -> list[tuple[Claim, str]]:
    """The variant's ``claim``/``expect`` (the study's own claim) and its ``claims`` list (further claims), each
    with the key it was written under."""
    found: list[tuple[Claim, str]] = []
    if "expect" in raw and "claim" not in raw:
        raise where.error(loc, "expect", 'expect is set without claim; add claim = "what the study said" (the '
                          "words the checks stand for)")
    if "claim" in raw:
        text = _text(raw["claim"], "claim", loc, where, "claim")
        found.append((Claim(text, _expect(raw.get("expect", []), loc, where, "expect")), "expect"))
    more = raw.get("claims", [])
    if not isinstance(more, list) or not all(isinstance(c, Mapping) for c in more):
        raise where.error(loc, "claims", 'claims must be a list of tables: claims = [{ by = "issue 11", claim = '
                          '"...", expect = ["differs"] }]')
    for c in more:
        for k in c:
            if k not in CLAIM_TABLE_KEYS:
                raise where.error(loc, "claims", f"unknown key {k!r} in a claims table{suggest(k, CLAIM_TABLE_KEYS)}; "
                                  f"allowed: {', '.join(CLAIM_TABLE_KEYS)}")
        by = _text(c["by"], "claims", loc, where, "by in a claims table") if "by" in c else ""
        found.append((Claim(_text(c.get("claim"), "claims", loc, where, "claim in a claims table"),
                            _expect(c.get("expect", []), loc, where, "claims"), by), "claims"))
    return found


def _check_word(word: str, name: str, baseline: str, index: Mapping[str, int], loc: tuple[str, int], key: str,
                where: Locator) -> None:
    head, sep, other = word.partition(":")
    if head in RELATIVE:
        if not sep or not other:
            raise where.error(loc, key, f"expect {word!r} names no variant: write {head}:NAME, e.g. {head}:{baseline}")
        if other not in index:
            raise where.error(loc, key, f"expect {word!r}: there is no variant {other!r}{suggest(other, list(index))}"
                              f"; variants: {', '.join(list(index)[:8])}")
        if other == name:
            raise where.error(loc, key, f"expect {word!r} compares variant {name!r} with itself; name another variant")
        return
    if word not in WORDS or sep:
        raise where.error(loc, key, f"expect {word!r} is not a word the findings know{suggest(word, WORDS)}; words: "
                          f"{', '.join(WORDS)}")
    if name == baseline:
        raise where.error(loc, key, f"expect {word!r} compares the baseline {name!r} with itself; use "
                          "differs-from:NAME or similar-to:NAME, or move the claim to another variant")


def _losses(value: Any, loc: tuple[str, int], where: Locator) -> tuple[float, ...]:
    ok = isinstance(value, list) and value and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0 for x in value)
    if not ok:
        raise where.error(loc, "report_losses", f"report_losses = {shown(value)} is invalid: give the study's printed "
                          "total losses in order, a list of numbers >= 0, e.g. report_losses = [15159387.0, 9810742.0]")
    return tuple(float(x) for x in value)
