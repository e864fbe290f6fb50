"""The README stays true: its options table is the config's, and its Python example runs.

Regenerate the table after changing StyleConfig: ``python tests/test_readme.py``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from impasto.config import StyleConfig, field_docs

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


def test_python_example_runs(tmp_path, monkeypatch, content_img, style_img, style2_img):
    text = README.read_text()
    code = re.search(r"## Python API\n\n```python\n(.*?)```", text, re.S).group(1)
    code = code.replace("size=256, steps=30", "size=32, steps=2, start_size=None")  # tiny, for speed
    monkeypatch.chdir(tmp_path)
    for name, im in (("photo.jpg", content_img), ("starry_night.jpg", style_img), ("oil.jpg", style_img),
                     ("ink.jpg", style2_img)):
        im.save(name)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["result"].status == "done" and (tmp_path / "out.png").exists()
    assert ns["variant"].pooling == "avg" and ns["classic"].steps == 100


if __name__ == "__main__":
    text = README.read_text()
    m = _block(text)
    if not m:
        sys.exit("README lacks <!-- OPTIONS --> … <!-- /OPTIONS -->")
    README.write_text(text[: m.start(1)] + options_table() + text[m.end(1):])
    print("README options table updated")
