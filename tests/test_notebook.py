"""A notebook, executed as Jupyter would (nbclient, a real ipykernel): a stylize cell shows its image, the progress
bar is a widget when ipywidgets is there and clean text when it is not, and a sweep's bars print no escape codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the notebook extra: pip install -e '.[notebook]'")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the notebook extra: pip install -e '.[notebook]'")

KERNEL = "impasto-test"
EXPERIMENT = """\
[base]
size = 32
start_size = 16
steps = 2
first_steps = 2
device = "cpu"
style_layers = "relu1_1,relu2_1"
content_layers = ["relu2_1"]

[[variant]]
name = "plain"

[[variant]]
name = "heavy"
style_weight = 40
"""
TINY = ('size=32, start_size=16, steps=2, first_steps=3, device="cpu", style_layers="relu1_1,relu2_1", '
        'content_layers=("relu2_1",), progress=True')

CELLS = [
    "import impasto\nfrom impasto.samples import sample_content, sample_style\n"
    "content, style = sample_content(48, 36), sample_style(40, 40)",
    f"result = impasto.stylize(content, style, {TINY})\nresult",  # ipywidgets is installed: a widget
    "import sys\nsys.modules['ipywidgets'] = None  # as if ipywidgets were not installed: text bars from here on\n"
    f"plain = impasto.stylize(content, style, {TINY})\nplain",
    f"from pathlib import Path\nPath('exp.toml').write_text({EXPERIMENT!r})\n"
    "content.save('c.png'); style.save('s.png')\n"
    "study = impasto.sweep('exp.toml', content='c.png', styles=['s.png'], output='study', plots=False)\nstudy",
]


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec for this interpreter (the venv the tests run in), found through JUPYTER_PATH: nothing is
    installed into the user's Jupyter folders."""
    pytest.importorskip("ipykernel", reason="the notebook test needs ipykernel: pip install -e '.[notebook]'")
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "impasto test", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # today's paths, without jupyter_core's migration warning
    return KERNEL


def texts(output: dict[str, Any]) -> list[str]:
    """Every text an output carries: a stream's, and each text/* representation of a result."""
    if output["output_type"] == "stream":
        return [output["text"]]
    return [v for k, v in output.get("data", {}).items() if k.startswith("text/")] + output.get("traceback", [])


def test_a_notebook_shows_images_and_clean_progress(kernel: str, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    work = tmp_path / "work"
    work.mkdir()
    nbclient.NotebookClient(nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(work)}}).execute()
    outputs = [cell.outputs for cell in nb.cells]

    for i in (1, 2, 3):  # the stylize cells end with their Result, the sweep's with its contact sheet
        assert any("image/png" in o.get("data", {}) for o in outputs[i] if o["output_type"] == "execute_result"), (
            f"cell {i} shows no image: {outputs[i]}")
    widget = "application/vnd.jupyter.widget-view+json"
    assert any(widget in o.get("data", {}) for o in outputs[1]), "with ipywidgets, the bar is a widget"
    assert not any(widget in o.get("data", {}) for o in outputs[2] + outputs[3])
    streams = {i: "".join(o["text"] for o in out if o["output_type"] == "stream") for i, out in enumerate(outputs)}
    assert "scale 3/3 · 32 px" in streams[2] and "total=" in streams[2], streams[2]  # the text bar
    assert "sweep · batch 1/1" in streams[3], streams[3]  # one bar for the sweep, naming its batch
    for i, out in enumerate(outputs):
        for text in (t for o in out for t in texts(o)):
            assert "\x1b" not in text, f"cell {i} printed an escape sequence: {text!r}"
