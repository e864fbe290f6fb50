"""The README is a short front page whose commands are the real ones, and the docs' prose stays true: the defaults
it states are the config's, and its Python examples run with the assertions below (tests/test_docs.py runs every
example of every page too; the configuration reference is generated from the config when the docs are built).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from impasto.config import StyleConfig
from impasto.core.schedule import scale_sizes, steps_per_scale

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SETUP = [
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e . && impasto demo",
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 -e '.[all,test]' && python -m pytest -q",
]


def test_the_readme_is_a_front_page_with_the_set_up_commands_verbatim():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    fenced = re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)
    assert fenced[:2] == [c + "\n" for c in SETUP]  # the two set-up commands, first and exactly
    ci = (ROOT / ".ci" / "run").read_text()
    assert SETUP[1].split(" && ", 2)[2] in ci  # CI runs the README's test command
    build = re.search(r"pip install -e '\.\[docs\]' && (python -m sphinx -W [^&]*?) &&", text).group(1)
    assert build.replace("-W ", "-W --keep-going -q ") in ci  # and builds the docs as the README says
    assert "## Credits and licences" in text and "MIT" in text


def _page(rel: str) -> str:
    return (DOCS / rel).read_text()


def _section(text: str, title: str) -> str:
    """A section's prose (from its heading to the next of any level), its line breaks and runs of spaces as one."""
    m = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#|\Z)", text, re.S | re.M)
    assert m, f"the page lacks the section {title!r}"
    return " ".join(m.group(1).split())


def _stated(pattern: str, text: str, where: str) -> tuple[str, ...]:
    m = re.search(pattern, text)
    assert m, f"the docs' {where} no longer says {pattern!r}: state the default there again, or update this test"
    return m.groups()


def test_the_defaults_stated_in_prose_are_the_configs():
    """Issue 28: "Why these defaults" said 200 + 50 steps and style weight 15 while the code said 80 + 40 and 20."""
    cfg = StyleConfig()
    first = cfg.first_steps or 2 * cfg.steps
    why = _section(_page("explanation/defaults.md"), "Why these defaults, per device")
    start, first_n, later, total, size = map(int, _stated(
        r"(\d+) px up to `size` in steps of √2, (\d+) Adam iterations on the first scale and (\d+) on each later one "
        r"\((\d+) at (\d+) px\)", why, "Why these defaults"))
    assert (start, first_n, later, size) == (cfg.start_size, first, cfg.steps, cfg.size)
    assert cfg.optimizer == "adam" and math.isclose(cfg.scale_factor, math.sqrt(2))
    sizes = scale_sizes((cfg.size, cfg.size), cfg.start_size, cfg.scale_factor)
    assert total == sum(steps_per_scale(len(sizes), cfg.steps, cfg.first_steps, cfg.scale_steps))
    (lr,) = _stated(r"Adam, lr ([\d.]+) on pixels", why, "Why these defaults")
    assert float(lr) == cfg.lr
    (weight,) = _stated(r"style weight ([\d.e+]+)", why, "Why these defaults")
    assert float(weight) == cfg.style_weight
    ratios, deep, content = _stated(r"style layers relu1_1…relu4_1 weighted ([\d.: ]+?) and relu5_1 at ([\d.]+), "
                                    r"content (relu\d_\d)", why, "Why these defaults")
    weights = [float(w) for w in ratios.split(":")] + [float(deep)]
    assert list(cfg.style_layers) == list(zip(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], weights))
    assert cfg.content_layers == (content,)
    for text in (README.read_text(), _page("index.md")):
        (intro_start,) = _stated(r"coarse-to-fine \((\d+) px up to the final size in steps of √2\)",
                                 " ".join(text.split()), "introduction")
        assert int(intro_start) == cfg.start_size
    departs = _section(_page("explanation/departures.md"), "Gatys et al. (2016)")
    start2, ratio = _stated(r"coarse-to-fine from (\d+) px with Adam's moments carried to each scale and (\d+)× "
                            r"iterations on the first scale", departs, "departures")
    assert (int(start2), int(ratio) * cfg.steps) == (cfg.start_size, first)


def _run_snippet(code: str, where: str, tmp_path: Path, monkeypatch, files: dict, tiny: str) -> dict:
    """Run a docs code block as written, in an empty folder with only ``files`` (tiny generated images) in it, at a
    tiny size: the block's own ``size=256, steps=30`` replaced by ``tiny``."""
    assert "size=256, steps=30" in code
    code = code.replace("size=256, steps=30", tiny)
    monkeypatch.chdir(tmp_path)
    for name, im in files.items():
        im.save(name)
    ns: dict = {}
    exec(compile(code, where, "exec"), ns)
    return ns


def test_python_example_runs(tmp_path, monkeypatch, content_img, style_img, style2_img):
    text = _page("reference/python-api.md")
    code = re.search(r"## Overview\n\n```python\n(.*?)```", text, re.S).group(1)
    files = {"photo.jpg": content_img, "style.jpg": style_img, "style2.jpg": style2_img}
    ns = _run_snippet(code, "docs/reference/python-api.md", tmp_path, monkeypatch, files,
                      "size=32, steps=2, start_size=None")
    assert ns["result"].status == "done" and (tmp_path / "out.png").exists()
    assert ns["variant"].pooling == "avg" and ns["classic"].steps == 100
    shown = re.search(r"print\(result\.losses\) +# \{(.*?)\}", text).group(1)
    assert re.findall(r"'(\w+)'", shown) == list(ns["result"].losses)  # every key listed, in order (issue 28)
    assert ns["result"].losses["temporal"] == 0  # as the page says of a still image


def test_the_masks_example_runs_as_written(tmp_path, monkeypatch, content_img, style_img, style2_img):
    """Issue 28: it named a face.png nobody had; it makes its keep mask as it makes the sky's (only the photo and the
    paintings are given here)."""
    code = re.search(r"## From Python.*?```python\n(.*?)```", _page("how-to/masks.md"), re.S).group(1)
    files = {"photo.jpg": content_img, "style.jpg": style_img, "style2.jpg": style2_img}
    ns = _run_snippet(code, "docs/how-to/masks.md", tmp_path, monkeypatch, files,
                      "size=32, steps=2, start_size=None, progress=False")
    result = ns["result"]
    assert result.status == "done" and (tmp_path / "regions.png").exists()
    assert result.config.keep_mask == "face.png" and result.recipe["inputs"]["masks"] == ["<PIL image>"] * 2
