"""Bounds on what settings may hold, wherever they come from (a TOML file, a JSON form field): size and nesting.

impasto's settings nest at most three levels (``{"style_layers": [["relu1_1", 1.0]]}``), an experiment file five;
anything deeper is refused before it is walked, and measured without recursion, so that a value nested 100,000 deep
is one line rather than a RecursionError. Parsers are guarded too: tomllib recurses once per ``[`` or ``{`` and
takes quadratic time over long ``a.b.c...`` names, so those are refused from the text before it is parsed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

MAX_NESTING = 16
MAX_TOML_BYTES = 8 * 2**20  # settings and experiment files take a few KB
MAX_STEPS = 1_000_000  # per scale: more is a typo (or 1e308 from a JSON form), not a run that would ever end
MAX_SCALES = 256  # scale_steps entries; 16 px to 16384 px in steps of 1.05 is 142 scales
_KEY_OR_HEADER = re.compile(r"^[ \t]*(\[\[?[^\]\n]*|[^=\n#\[]*=)", re.M)  # a line's table header, or its key


def nesting(value: Any, limit: int = MAX_NESTING) -> int:
    """How deep lists and tables nest in ``value`` (a scalar: 0), counted without recursion and no further than
    ``limit + 1``: a value nested 100,000 deep is measured at once."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, Mapping):
            children: Any = v.values()
        elif isinstance(v, (list, tuple)):
            children = v
        else:
            continue
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        stack.extend((c, depth + 1) for c in children)
    return deepest


def check_dotted(text: str, path: str | Path) -> None:
    """Refuse a TOML table header or key of more than MAX_NESTING dotted parts from the text alone: ``[a.a.a. ...]``
    100,000 parts long keeps tomllib busy for minutes before any nesting check could run."""
    for m in _KEY_OR_HEADER.finditer(text):
        parts = m.group(1).count(".") + 1
        if parts > MAX_NESTING:
            line = text.count("\n", 0, m.start()) + 1
            raise ConfigError(f"{path}:{line}: a table or key name of {parts:,} dotted parts; impasto's settings "
                              f"nest at most {MAX_NESTING} levels")


def parse_toml(text: str, path: str | Path) -> dict[str, Any]:
    """TOML text → a dict, or a one-line ConfigError naming the file (and the line where it can be found): a syntax
    error, nesting past the parser's recursion or past MAX_NESTING, a number past Python's 4300 digits."""
    check_dotted(text, path)  # before parsing: tomllib takes quadratic time over a.b.c... names
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = getattr(e, "lineno", None)  # Python 3.14's tomllib and tomli 2.1 have it; older ones say it in words
        if line is None:
            m = re.search(r"at line (\d+)", str(e))
            line = int(m.group(1)) if m else max(1, len(text.splitlines()))  # "at end of document": the last line
        raise ConfigError(f"{path}:{line}: TOML syntax error: {e}") from None
    except RecursionError:  # tomllib recurses once per level of [ or {: a few hundred levels exhaust the stack
        raise ConfigError(f"{path}: arrays or inline tables are nested too deeply; impasto's settings nest at most "
                          f"{MAX_NESTING} levels") from None
    except ValueError as e:  # an integer longer than Python converts (sys.get_int_max_str_digits(): 4300 digits)
        m = re.search(rf"\d{{{max(1, sys.get_int_max_str_digits())},}}", text)
        where = f"{path}:{text[: m.start()].count(chr(10)) + 1}" if m else str(path)
        raise ConfigError(f"{where}: a number too long to read ({str(e).split(':')[0]}); no setting needs more than "
                          "a few digits") from None
    depth = nesting(data, MAX_NESTING)
    if depth > MAX_NESTING:  # [a.b.c. ...] headers nest tables without recursing in the parser
        raise ConfigError(f"{path}: tables or arrays nested over {MAX_NESTING} levels deep; impasto's settings nest at "
                          f"most {MAX_NESTING} levels")
    return data
