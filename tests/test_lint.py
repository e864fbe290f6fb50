"""House rules that a tool can check: ruff is clean on src, tests and bench, and no source file outgrows a sitting."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "impasto"
MAX_LINES = 400  # STYLE.md: files of about 100-400 lines, each readable in one sitting


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')")
def test_ruff_is_clean() -> None:
    # The rules and their settings are pyproject.toml's [tool.ruff]; ruff is run from the root so that it reads them.
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "src", "tests", "bench"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        pytest.fail(f"ruff check src tests bench exited {run.returncode}:\n{run.stdout}{run.stderr}", pytrace=False)


def test_no_source_file_is_over_400_lines() -> None:
    files = sorted([*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.js")])
    assert files, f"no source files found under {PACKAGE}"
    long = {f.relative_to(ROOT).as_posix(): n for f in files
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines (split them by concern): " + ", ".join(
        f"{name} ({n} lines)" for name, n in long.items())
