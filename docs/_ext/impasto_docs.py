"""The docs' own Sphinx extension: the reference pages generated from the code, and the gallery's picture scraper.

Nothing here is copied from the code: the CLI page is each command's ``--help`` (the same argparse parser the
``impasto`` command builds), the configuration page is StyleConfig's fields with their docstrings
(``impasto.config.field_docs``), defaults and flags, grouped as ``--help`` groups them, and the HTTP page lists the
routes of the web app's OpenAPI schema. They are written into ``docs/reference/`` when a build starts (the files
are in .gitignore), and ``tests/test_docs.py`` checks that they generate.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parents[1]
GENERATED = {"reference/cli.md", "reference/config.md", "reference/http-routes.md"}
WIDTH = 88  # the columns --help is rendered at, so the page does not depend on the terminal that built it


@contextlib.contextmanager
def _columns(n: int) -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(n)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _fence(text: str) -> str:
    return "```text\n" + text.rstrip() + "\n```\n"


def cli_reference() -> str:
    """The ``impasto`` command's reference: the top-level ``--help``, then every subcommand's, as the CLI prints it."""
    from impasto.cli import build_parser

    with _columns(WIDTH):
        parser = build_parser()
        commands = _subcommands(parser)
        helps = {a.dest: a.help for a in parser._subparsers._group_actions[0]._choices_actions}  # type: ignore[union-attr]
        out = ["# Command line", "",
               "Generated when the docs are built, from the parser the `impasto` command itself builds "
               "(`impasto.cli.build_parser`): each section is exactly what `impasto COMMAND --help` prints. "
               "Exit codes are in [Errors and exit codes](errors.md); every setting flag is a field of "
               "[the configuration](config.md).", "",
               "| command | what it does |", "|---|---|"]
        out += [f"| [`impasto {name}`](#impasto-{name}) | {helps.get(name, '')} |" for name in commands]
        out += ["", "## `impasto`", "", _fence(parser.format_help())]
        for name, sub in commands.items():
            out += [f"## `impasto {name}`", "", _fence(sub.format_help())]
    return "\n".join(out)


def _shown(name: str, value: Any) -> str:
    from impasto.flags import shown_default

    if name == "style_layers":
        return ",".join(f"{n}:{w:g}" for n, w in value)
    return shown_default(value)


def config_reference() -> str:
    """StyleConfig's fields, in --help's groups: field, flag, default and the field's docstring."""
    from impasto.config import StyleConfig, field_docs
    from impasto.flags import FIELD_GROUPS, GROUPS, flag_name

    docs, cfg = field_docs(), StyleConfig()
    out = ["# Configuration", "",
           "Every setting of a run is a field of `impasto.StyleConfig` (typed, frozen, validated once). Each is a "
           "keyword of `impasto.stylize`, a flag of `impasto stylize` (`style_weight` → `--style-weight`; on/off "
           "fields are `--x`/`--no-x`), a key of a `--config` TOML file and of a sweep's `[base]`, and a field of "
           "the web API's `config`. Generated when the docs are built from StyleConfig's field docstrings "
           "(`impasto.config.field_docs()`, the text `--help` and the web form show), in `--help`'s groups.", ""]
    for group, title in GROUPS.items():
        names = [n for n in cfg.__dataclass_fields__ if FIELD_GROUPS.get(n, "run") == group]
        if not names:
            continue
        out += [f"## {title[0].upper()}{title[1:]}", "", "| field | flag | default | meaning |", "|---|---|---|---|"]
        for name in names:
            doc = docs.get(name, "").replace("|", "/")
            out.append(f"| `{name}` | `{flag_name(name)}` | `{_shown(name, getattr(cfg, name))}` | {doc} |")
        out.append("")
    return "\n".join(out)


def http_routes() -> str:
    """The web app's routes from its OpenAPI schema (a table to include in the HTTP API page)."""
    import tempfile

    from impasto.web.app import create_app

    with tempfile.TemporaryDirectory() as results:
        schema = create_app(results, "cpu", start_worker=False).openapi()
    rows = ["| method | path | what |", "|---|---|---|"]
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            rows.append(f"| `{method.upper()}` | `{path}` | {op.get('summary', '')} |")
    return "\n".join(rows) + "\n"


def write_generated(docs: Path = DOCS) -> list[Path]:
    """Write the generated pages (only those whose text changed, so a rebuild does not redo every page)."""
    pages = {"reference/cli.md": cli_reference, "reference/config.md": config_reference,
             "reference/http-routes.md": http_routes}
    written = []
    for rel, make in pages.items():
        path = docs / rel
        text = make()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


# --- the gallery -------------------------------------------------------------------------------------------------
PICTURES = (".png", ".gif")


def picture_scraper(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
    """sphinx-gallery's image scraper for the examples: the pictures a code block wrote into the example's folder
    (the working directory sphinx-gallery runs it in) are moved into the gallery, in the order they were written,
    so none stays beside the scripts (the build clears any left there by an interrupted one before it starts)."""
    from sphinx_gallery.scrapers import figure_rst

    folder = Path(block_vars["src_file"]).parent
    new = sorted((p for p in folder.iterdir() if p.suffix in PICTURES), key=lambda p: (p.stat().st_mtime, p.name))
    paths = []
    for picture, target in zip(new, block_vars["image_path_iterator"]):
        target = Path(target).with_suffix(picture.suffix)
        shutil.move(str(picture), target)
        paths.append(target)
    return figure_rst(paths, gallery_conf["src_dir"])


def _generate(app: Any) -> None:
    write_generated(Path(app.srcdir))
    for stale in (Path(app.srcdir) / "examples").iterdir():  # pictures an interrupted build left beside the scripts
        if stale.suffix in PICTURES:
            stale.unlink()


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
