"""The docs cannot drift: every example in README.md and docs/ runs (tests/docs_examples.py says how), and the
reference pages the build generates from the code (the CLI's --help, StyleConfig's fields, the HTTP routes) are
generated and complete."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from docs_examples import ROOT, blocks, commands, make_folder, pages, run_page, tiny_runs
from impasto.cli import build_parser
from impasto.config import StyleConfig, field_docs
from impasto.flags import flag_name, help_text

PAGES = pages()


def test_the_pages_are_found_and_hold_examples() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/tutorial/first-picture.md", "docs/how-to/masks.md", "docs/reference/python-api.md"} \
        <= names
    assert sum(len(blocks(p)) for p in PAGES) >= 25
    words = [w for p in PAGES for lang, code, _ in blocks(p) if lang == "sh" for c in commands(code) for w in c[:1]]
    assert words.count("impasto") >= 30  # the harness reads the commands as commands, not as one string


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_example_on_the_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not blocks(page):
        pytest.skip("no runnable blocks")
    make_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    with tiny_runs():
        assert run_page(page, tmp_path) == len(blocks(page))


def test_a_failing_example_fails_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness is no rubber stamp: a wrong flag, a failing shell line and a raising block each fail."""
    make_folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    for text, error in (("```sh\nimpasto stylize photo.jpg style.jpg --style-wieght 3\n```\n", AssertionError),
                        ("```sh\nls no-such-file\n```\n", AssertionError),
                        ("```python\nimport impasto\nimpasto.stylize('missing.jpg', 'style.jpg')\n```\n",
                         Exception)):
        page = tmp_path / "page.md"
        page.write_text(text)
        with tiny_runs(), pytest.raises(error):
            run_page_at(page, tmp_path)
    page.write_text("```text\nimpasto serve\n```\n")  # text blocks are not run
    assert blocks(page) == []


def run_page_at(page: Path, folder: Path) -> int:
    import docs_examples

    old = docs_examples.ROOT
    docs_examples.ROOT = page.parent
    try:
        return run_page(page, folder)
    finally:
        docs_examples.ROOT = old


def test_the_harness_makes_runs_tiny_and_restores_the_config() -> None:
    with tiny_runs():
        c = StyleConfig(size=2048, steps=500, tile_size=1024, scale_steps="200,100,100,50")
        assert (c.size, c.steps, c.tile_size, c.scale_steps, c.start_size) == (32, 1, 64, None, None)
    assert StyleConfig(size=2048).size == 2048


# --- the generated reference pages -----------------------------------------------------------------------------
def test_the_cli_page_is_every_commands_help() -> None:
    from impasto_docs import WIDTH, _columns, cli_reference

    page = cli_reference()
    parser = build_parser()
    commands_ = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands_) >= {"stylize", "sweep", "batch", "serve", "video", "demo", "recipe"}
    with _columns(WIDTH):
        for name, sub in commands_.items():
            assert f"## `impasto {name}`" in page
            assert sub.format_help().rstrip() in page  # exactly what --help prints
    for name in StyleConfig.__dataclass_fields__:
        if name != "preset":
            assert flag_name(name) in page, name


def test_the_config_page_has_every_field_its_default_and_doc() -> None:
    from impasto_docs import config_reference

    page, docs = config_reference(), field_docs()
    rows = {line.split("|")[1].strip(" `"): line for line in page.splitlines() if line.startswith("| `")}
    assert set(rows) == set(StyleConfig.__dataclass_fields__)
    for name, row in rows.items():
        assert docs[name].replace("|", "/") in row and f"`{flag_name(name)}`" in row
        assert help_text(docs[name])  # every field has a docstring, the one source of --help and this page
    assert "| `size` | `--size` | `512` |" in page and "| `style_weight` | `--style-weight` | `20` |" in page


def test_the_build_writes_the_generated_pages(tmp_path: Path) -> None:
    from impasto_docs import GENERATED, write_generated

    (tmp_path / "reference").mkdir()
    written = write_generated(tmp_path)
    assert {p.relative_to(tmp_path).as_posix() for p in written} == GENERATED
    assert "POST" in (tmp_path / "reference" / "http-routes.md").read_text()  # the app's routes, from its schema
    assert write_generated(tmp_path) == []  # unchanged pages are not rewritten


GALLERY = sorted((ROOT / "docs" / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("script", GALLERY, ids=[p.name for p in GALLERY])
def test_no_gallery_code_cell_is_empty_once_its_config_comments_are_removed(script: Path) -> None:
    """sphinx-gallery drops ``# sphinx_gallery_*`` comments from the page's code: a cell holding nothing else becomes
    an empty grey code box (plot_01 had one under its intro), and one right after ``# %%`` is read as the cell's
    text and printed in the paragraph."""
    pytest.importorskip("sphinx_gallery")
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    _, cells = split_code_and_text_blocks(str(script))[:2]
    for kind, text, line in cells:
        # a config comment where sphinx-gallery reads text (right after "# %%") is printed in the paragraph
        assert kind == "code" or "sphinx_gallery_" not in text, f"{script.name}:{line}: a config comment in text"
        if kind == "code":
            kept = [s for s in text.splitlines() if s.strip() and not s.strip().startswith("# sphinx_gallery_")]
            assert kept, f"{script.name}:{line}: a code cell with nothing but config comments renders as an empty box"
