"""Sphinx configuration for impasto's docs. Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(warnings are errors: a broken link or reference, a docstring that does not render, an example that fails)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))  # the checkout's impasto, installed or not

import impasto  # noqa: E402

project = "impasto"
author = "the impasto authors"
copyright = "impasto authors, MIT licence"
release = version = impasto.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_gallery.gen_gallery",
    "impasto_docs",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 4  # links to a heading by its slug (#why-these-defaults-per-device), as on GitHub

html_theme = "furo"
html_title = f"impasto {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = False
napoleon_numpy_docstring = False

# The gallery: every docs/examples/plot_*.py runs at build time on the procedural sample scenes (impasto.samples),
# at tiny sizes, and the pictures it writes become the page's figures. Nothing the gallery shows is committed.
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "image_scrapers": ("impasto_docs.picture_scraper",),
    "capture_repr": (),
    "download_all_examples": False,
    "abort_on_example_error": True,
    "remove_config_comments": True,
    "reset_modules": (),  # no example draws with matplotlib: its default reset would make the docs extra need it
    "within_subsection_order": "FileNameSortKey",
    "min_reported_time": 1e9,  # the run times depend on the machine that built the page: not shown
    "show_memory": False,
    "show_signature": False,
}
