"""The README stays true: its options table is the config's, the defaults its prose states are the config's, and
its Python example runs.

Regenerate the table after changing StyleConfig: ``python tests/test_readme.py``.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

from impasto.config import StyleConfig, field_docs
from impasto.core.schedule import scale_sizes, steps_per_scale

README = Path(__file__).resolve().parents[1] / "README.md"


def options_table() -> str:
    docs, cfg = field_docs(), StyleConfig()
    rows = ["| field | flag | default | meaning |", "|---|---|---|---|"]
    for name in cfg.__dataclass_fields__:
        v = getattr(cfg, name)
        if name == "style_layers":
            shown = ",".join(f"{n}:{w:g}" for n, w in v)
        elif isinstance(v, tuple):
            shown = ",".join(map(str, v))
        elif isinstance(v, float) and name == "scale_factor":
            shown = "√2"
        else:
            shown = "none" if v is None else str(v)
        rows.append(f"| `{name}` | `--{name.replace('_', '-')}` | `{shown}` | {docs.get(name, '').replace('|', '/')} |")
    return "\n".join(rows)


def _block(text: str) -> re.Match[str] | None:
    return re.search(r"<!-- OPTIONS -->\n(.*?)\n<!-- /OPTIONS -->", text, re.S)


def test_options_table_matches_the_config():
    m = _block(README.read_text())
    assert m, "README lacks the OPTIONS block"
    assert m.group(1) == options_table(), "README's options table is stale: run python tests/test_readme.py"


def _section(text: str, title: str) -> str:
    """A section's prose (from its heading to the next of any level), its line breaks and runs of spaces as one."""
    m = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#)", text, re.S | re.M)
    assert m, f"README lacks the section {title!r}"
    return " ".join(m.group(1).split())


def _stated(pattern: str, text: str, where: str) -> tuple[str, ...]:
    m = re.search(pattern, text)
    assert m, f"README's {where} no longer says {pattern!r}: state the default there again, or update this test"
    return m.groups()


def test_the_defaults_stated_in_prose_are_the_configs():
    """Issue 28: "Why these defaults" said 200 + 50 steps and style weight 15 while the code said 80 + 40 and 20."""
    text, cfg = README.read_text(), StyleConfig()
    first = cfg.first_steps or 2 * cfg.steps
    why = _section(text, "Why these defaults, per device")
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
    (intro_start,) = _stated(r"coarse-to-fine \((\d+) px up to the final size in steps of √2\)",
                             " ".join(text.split()), "introduction")
    assert int(intro_start) == cfg.start_size
    departs = _section(text, "Where impasto departs from Gatys et al. (2016)")
    start2, ratio = _stated(r"coarse-to-fine from (\d+) px with Adam's moments carried to each scale and (\d+)× "
                            r"iterations on the first scale", departs, "departures")
    assert (int(start2), int(ratio) * cfg.steps) == (cfg.start_size, first)


def _run_snippet(pattern: str, tiny: str, tmp_path: Path, monkeypatch, files: dict) -> dict:
    """Run a README code block as written, in an empty folder with only ``files`` (tiny generated images) in it, at a
    tiny size: the block's own ``size=256, steps=30`` replaced by ``tiny``."""
    code = re.search(pattern, README.read_text(), re.S).group(1)
    assert "size=256, steps=30" in code
    code = code.replace("size=256, steps=30", tiny)
    monkeypatch.chdir(tmp_path)
    for name, im in files.items():
        im.save(name)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    return ns


def test_python_example_runs(tmp_path, monkeypatch, content_img, style_img, style2_img):
    files = {"photo.jpg": content_img, "starry_night.jpg": style_img, "oil.jpg": style_img, "ink.jpg": style2_img}
    ns = _run_snippet(r"## Python API\n\n```python\n(.*?)```", "size=32, steps=2, start_size=None", tmp_path,
                      monkeypatch, files)
    assert ns["result"].status == "done" and (tmp_path / "out.png").exists()
    assert ns["variant"].pooling == "avg" and ns["classic"].steps == 100
    shown = re.search(r"print\(result\.losses\) +# \{(.*?)\}", README.read_text()).group(1)
    assert re.findall(r"'(\w+)'", shown) == list(ns["result"].losses)  # every key listed, in order (issue 28)
    assert ns["result"].losses["temporal"] == 0  # as the README says of a still image


def test_the_masks_example_runs_as_written(tmp_path, monkeypatch, content_img, style_img, style2_img):
    """Issue 28: it named a face.png nobody had; it makes its keep mask as it makes the sky's (only the photo and the
    paintings are given here)."""
    files = {"photo.jpg": content_img, "starry_night.jpg": style_img, "the_scream.jpg": style2_img}
    ns = _run_snippet(r"### Masks: a style per region.*?```python\n(.*?)```",
                      "size=32, steps=2, start_size=None, progress=False", tmp_path, monkeypatch, files)
    result = ns["result"]
    assert result.status == "done" and (tmp_path / "regions.png").exists()
    assert result.config.keep_mask == "face.png" and result.recipe["inputs"]["masks"] == ["<PIL image>"] * 2


if __name__ == "__main__":
    text = README.read_text()
    m = _block(text)
    if not m:
        sys.exit("README lacks <!-- OPTIONS --> … <!-- /OPTIONS -->")
    README.write_text(text[: m.start(1)] + options_table() + text[m.end(1):])
    print("README options table updated")
