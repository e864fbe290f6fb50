"""``impasto batch``: every content with every style (or a blend), one picture per pair, skip what exists, resume,
a summary sheet; one-hot blends paint exactly the single style's picture. 32 px images, a few steps."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.cli import main
from impasto.experiments.batch_job import expand, plan_pairs
from impasto.io.recipe import read_recipe
from impasto.samples import sample_content, sample_style

TINY = {"size": 32, "steps": 3, "start_size": None, "first_steps": None, "device": "cpu"}
FLAGS = ["--size", "32", "--steps", "3", "--start-size", "none", "--first-steps", "none", "--device", "cpu", "-q"]


@pytest.fixture
def folder(tmp_path: Path) -> dict[str, Path]:
    photos = tmp_path / "photos"
    photos.mkdir()
    sample_content(48, 36, seed=1).save(photos / "a.png")
    sample_content(36, 48, seed=2).save(photos / "b.jpg")
    (photos / "notes.txt").write_text("not an image")
    sample_style(40, 40, seed=3).save(tmp_path / "starry.png")
    sample_style(40, 40, seed=4).save(tmp_path / "scream.png")
    return {"photos": photos, "s1": tmp_path / "starry.png", "s2": tmp_path / "scream.png", "root": tmp_path}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_inputs_expand_and_names_are_unique(folder: dict[str, Path], tmp_path: Path) -> None:
    found = expand([folder["photos"], str(folder["root"] / "*.png")], "content images")
    assert [Path(p).name for p in found] == ["a.png", "b.jpg", "scream.png", "starry.png"]
    other = tmp_path / "other"
    other.mkdir()
    sample_content(40, 30).save(other / "a.png")
    pairs = plan_pairs([str(folder["photos"] / "a.png"), str(other / "a.png")], [str(folder["s1"])],
                       impasto.StyleConfig(), tmp_path / "out", blend=False)
    assert [p.name for p in pairs] == ["a-starry", "a-2-starry"]
    with pytest.raises(impasto.ImageError, match="matches no image"):
        expand([str(tmp_path / "*.webp")], "content images")


def test_every_pair_once_then_skipped(folder: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    job = impasto.batch([folder["photos"]], [folder["s1"], folder["s2"]], output=out, progress=False,
                                    **TINY)
    assert job.status == "done" and sorted(job.ran) == ["a-scream", "a-starry", "b-scream", "b-starry"]
    assert {p.name for p in out.glob("*.png")} == {"a-starry.png", "a-scream.png", "b-starry.png", "b-scream.png",
                                                  "sheet.png"}
    recipe = read_recipe(out / "b-scream.png")
    assert recipe["batch"]["styles"] == [str(folder["s2"])] and recipe["config"]["style_blend"] == [0.0, 1.0]
    manifest = json.loads((out / "batch.json").read_text())
    assert {p["status"] for p in manifest["pairs"]} == {"done"}
    with Image.open(out / "sheet.png") as sheet:
        assert sheet.width > 3 * 96

    again = impasto.batch([folder["photos"]], [folder["s1"], folder["s2"]], output=out,
                                      progress=False, **TINY)
    assert again.status == "done" and again.ran == [] and all(p.skipped for p in again.pairs)


def test_a_one_hot_pair_is_the_single_style_picture(folder: dict[str, Path], tmp_path: Path) -> None:
    job = impasto.batch([folder["photos"] / "a.png"], [folder["s1"], folder["s2"]],
                                    output=tmp_path / "out", progress=False, max_batch=1, **TINY)
    alone = impasto.stylize(folder["photos"] / "a.png", folder["s2"], progress=False, **TINY)
    pair = next(p for p in job.pairs if p.name == "a-scream")
    assert np.array_equal(_pixels(pair.path), np.asarray(alone.image))


def test_blend_and_resume(folder: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "blend"
    stop = impasto.StopToken()
    first = impasto.batch([folder["photos"]], [folder["s1"], folder["s2"]], output=out, blend=True,
                                      progress=False, stop=stop, callback=lambda e: stop.stop("test"), **TINY)
    assert first.status == "cancelled" and [p.name for p in first.pairs] == ["a-starry+scream", "b-starry+scream"]
    assert [p.name for p in out.glob("*.ckpt")] == ["a-starry+scream.png.ckpt"]
    steps: list[int] = []
    second = impasto.batch([folder["photos"]], [folder["s1"], folder["s2"]], output=out, blend=True,
                                       progress=False, callback=lambda e: steps.append(e.step.step), **TINY)
    assert second.status == "done" and not list(out.glob("*.ckpt"))
    assert steps[:2] == [2, 3] and steps[2:] == [1, 2, 3]  # a went on from step 1; b started afresh
    assert read_recipe(out / "a-starry+scream.png")["config"]["style_blend"] is None


def test_cli_batch(folder: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["batch", str(folder["photos"] / "a.png"), "--style", str(folder["s1"]), "-o", str(out), *FLAGS]
    assert main(args) == 0 and (out / "a-starry.png").is_file()
    assert "1 pictures made" in capsys.readouterr().err
    assert main(args) == 0 and "already there" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "none-*.png"), "--style", str(folder["s1"]), "-o", str(out)]) == 2
    assert main(["batch", str(folder["photos"]), "--style", str(folder["s1"]), "-o", str(out),
                 "--workers", "2"]) == 2  # a Ray flag without --executor ray


def test_without_ray_one_line_says_what_to_install(folder: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    code = main(["batch", str(folder["photos"]), "--style", str(folder["s1"]), "-o", str(tmp_path / "o"),
                 "--executor", "ray"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'impasto[ray]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # found before any work


def test_batch_help_does_not_import_torch() -> None:
    probe = ("import sys, impasto.cli\n"
             "try:\n    impasto.cli.main(['batch', '--help'])\n"
             "except SystemExit:\n    pass\n"
             "print('torch' in sys.modules, 'ray' in sys.modules, file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "--executor {local,ray}" in run.stdout and run.stderr.splitlines()[-1] == "False False", run.stderr


def test_the_docs_batch_example_runs(folder: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "how-to" / "batch.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "size=512" in code
    code = code.replace("size=512", ", ".join(f"{k}={v!r}" for k, v in TINY.items()) + ", progress=False")
    monkeypatch.chdir(folder["root"])
    for name, png in (("style", "starry"), ("style2", "scream")):
        (folder["root"] / f"{name}.jpg").write_bytes((folder["root"] / f"{png}.png").read_bytes())
    ns: dict = {}
    exec(compile(code, "docs/how-to/batch.md", "exec"), ns)
    assert ns["job"].status == "done" and len(ns["job"].ran) == 4


def test_an_unreadable_photo_fails_alone(folder: dict[str, Path], tmp_path: Path) -> None:
    (folder["photos"] / "c.png").write_bytes(b"not a png")
    job = impasto.batch([folder["photos"] / "a.png", folder["photos"] / "c.png"], [folder["s1"]],
                        output=tmp_path / "out", progress=False, **TINY)
    assert job.status == "failed" and [p.status for p in job.pairs] == ["done", "failed"]
    assert "not an image" in job.pairs[1].message
    with pytest.raises(impasto.ImageError, match="no such file"):
        impasto.batch([tmp_path / "typo.png"], [folder["s1"]], output=tmp_path / "out", progress=False)
