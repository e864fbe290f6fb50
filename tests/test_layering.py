"""The package's layering, read from the source (imports inside functions included): data flows one way.

front ends (cli, web, experiments, video) → api → io and core; core imports nothing above it; front ends import
nothing from core; io imports nothing from the api or the front ends.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import impasto

SRC = Path(impasto.__file__).parent  # src/impasto
FRONT_ENDS = ("cli", "blend_cli", "web", "experiments", "video")


def module_name(path: Path) -> str:
    """src/impasto/web/routes.py → impasto.web.routes; src/impasto/core/__init__.py → impasto.core."""
    parts = ["impasto", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in a file, anywhere in it (module level, functions, branches).

    ``from X import a`` yields X and X.a (``a`` may be a module: ``from .. import core``); relative imports are
    resolved against the file's package; ``importlib.import_module("...")`` with a literal name counts too."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level - 1 >= len(base_parts):
                    yield node.lineno, "<above impasto>"
                    continue
                base = ".".join(base_parts[: len(base_parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{module}.{alias.name}"
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (getattr(node.func, "attr", None) == "import_module"
                   or getattr(node.func, "id", None) in ("import_module", "__import__"))):
            yield node.lineno, node.args[0].value


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def files(*parts: str) -> list[Path]:
    """The .py files of src/impasto/<part> (a package folder, or <part>.py); those that do not exist are skipped."""
    out: list[Path] = []
    for part in parts:
        folder, single = SRC / part, SRC / f"{part}.py"
        if folder.is_dir():
            out += sorted(folder.rglob("*.py"))
        if single.is_file():
            out.append(single)
    return out


def violations(paths: list[Path], forbidden) -> list[str]:
    """One line per offending import statement: FILE:LINE imports MODULE (the statement's outermost forbidden name)."""
    found = []
    for path in paths:
        per_line: dict[int, str] = {}
        for line, module in imported(path):
            if forbidden(module) and (line not in per_line or len(module) < len(per_line[line])):
                per_line[line] = module
        found += [f"{path.relative_to(SRC.parent)}:{line} imports {m}" for line, m in sorted(per_line.items())]
    return found


def test_the_import_reader_resolves_relative_and_function_level_imports(tmp_path, monkeypatch):
    """The reader itself, on a file written here: otherwise a reader that finds nothing would pass every check."""
    fake = tmp_path / "impasto"
    (fake / "web").mkdir(parents=True)
    routes = fake / "web" / "routes.py"
    routes.write_text(
        "import os\n"
        "from ..core.events import Step\n"
        "from .. import core, api\n"
        "def f():\n"
        "    from impasto.core import state\n"
        "    import impasto.core.optimize\n"
        "    importlib.import_module('impasto.core.vgg')\n"
        "from . import forms\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", fake)
    got = set(imported(routes))
    for expected in [(1, "os"), (2, "impasto.core.events"), (3, "impasto.core"), (3, "impasto.api"),
                     (5, "impasto.core.state"), (6, "impasto.core.optimize"), (7, "impasto.core.vgg"),
                     (8, "impasto.web.forms")]:
        assert expected in got, expected
    assert violations([routes], lambda m: within(m, "impasto.core")) == [
        "impasto/web/routes.py:2 imports impasto.core.events", "impasto/web/routes.py:3 imports impasto.core",
        "impasto/web/routes.py:5 imports impasto.core", "impasto/web/routes.py:6 imports impasto.core.optimize",
        "impasto/web/routes.py:7 imports impasto.core.vgg"]
    assert module_name(fake / "core" / "__init__.py") == "impasto.core"


def test_core_imports_nothing_above_it():
    paths = files("core")
    assert len(paths) >= 10  # the check reads the real package
    bad = violations(paths, lambda m: within(m, "impasto") and not within(m, "impasto.core")
                     or m == "<above impasto>")
    assert not bad, "core must import nothing from impasto outside core:\n" + "\n".join(bad)


@pytest.mark.parametrize("front_end", FRONT_ENDS)
def test_front_ends_import_nothing_from_core(front_end):
    paths = files(front_end)
    if not paths:
        if front_end == "video":
            pytest.skip("impasto.video does not exist yet")
        pytest.fail(f"no source files for the front end {front_end!r}")
    bad = violations(paths, lambda m: within(m, "impasto.core"))
    assert not bad, (f"front ends import the engine from impasto.api only; {front_end} imports core:\n"
                     + "\n".join(bad))


def test_io_imports_nothing_from_the_api_or_the_front_ends():
    paths = files("io")
    assert paths
    above = ("impasto.api", *(f"impasto.{f}" for f in FRONT_ENDS))
    bad = violations(paths, lambda m: any(within(m, a) for a in above))
    assert not bad, "io must not import the api or a front end:\n" + "\n".join(bad)
