"""The CLI end to end on tiny generated images: outputs, PNG recipe round trip, exit codes."""

from __future__ import annotations

import json

from PIL import Image

from impasto.cli import main
from impasto.io.recipe import read_recipe

TINY = ["--size", "32", "--start-size", "none", "--steps", "3", "-q"]


def test_stylize_writes_image_recipe_and_history(image_files, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = main(["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(out), *TINY,
                 "--style-weight", "30", "--style-layers", "relu1_1:1,relu2_1:0.75,10:0.2", "--seed", "4"])
    assert code == 0
    with Image.open(out) as im:
        assert im.size == (32, 24)
    recipe = read_recipe(out)
    assert recipe["config"]["style_weight"] == 30.0
    assert recipe["config"]["style_layers"] == {"relu1_1": 1.0, "relu2_1": 0.75, "conv3_1": 0.2}
    assert recipe["seed"] == 4 and recipe["weights"] == "bundled" and recipe["status"] == "done"
    assert recipe["loss_convention"].startswith("relative")
    assert set(recipe["final_losses"]) == {"total", "content", "style", "tv"}
    lines = (tmp_path / "out.losses.csv").read_text().splitlines()
    assert lines[0] == "step,scale,time,total,content,style,tv" and len(lines) == 4
    capsys.readouterr()
    assert main(["recipe", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["seed"] == 4
    assert main(["recipe", str(out)]) == 0
    assert "to repeat: impasto stylize" in capsys.readouterr().out


def test_two_styles_blend_preset_and_jpeg(image_files, tmp_path):
    out = tmp_path / "blend.jpg"
    code = main(["stylize", str(image_files["content"]), str(image_files["style"]), str(image_files["style2"]),
                 "-o", str(out), *TINY, "--style-blend", "0.2,0.8", "--preset", "gatys-adam"])
    assert code == 0
    with Image.open(out) as im:
        assert im.format == "JPEG"


def test_config_file_then_flags(image_files, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "gatys-lbfgs"\nstyle_weight = 50\nsteps = 2\n')
    out = tmp_path / "o.png"
    assert main(["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(out), "--config", str(cfg),
                 "--size", "32", "--steps", "3", "-q"]) == 0
    c = read_recipe(out)["config"]
    assert c["optimizer"] == "lbfgs" and c["style_weight"] == 50 and c["steps"] == 3 and c["preset"] == "gatys-lbfgs"


def test_save_every_writes_snapshots(image_files, tmp_path):
    out = tmp_path / "s.png"
    assert main(["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(out), *TINY,
                 "--save-every", "2"]) == 0
    assert (tmp_path / "s.step00002.png").exists() and not (tmp_path / "s.step00003.png").exists()


def test_usage_errors_exit_2_with_one_line(image_files, tmp_path, capsys):
    for argv, needle in [
        (["stylize", "c.png", "s.png", "-o", str(tmp_path / "x.png"), "--steps", "-3"], "steps"),
        (["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(tmp_path / "x.png"),
          "--content-layers", "relu4_22"], "did you mean relu4_2"),
        (["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(tmp_path / "x.gif")], ".gif"),
        (["stylize", str(image_files["content"]), str(image_files["style"]), "-o", str(tmp_path / "x.png"),
          "--style-blend", "1,2"], "style_blend"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err
        assert not (tmp_path / "x.png").exists()


def test_argparse_errors_are_one_line(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["stylize", "only-content.png"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_layers_and_presets(capsys):
    assert main(["layers", "--size", "64"]) == 0
    out = capsys.readouterr().out
    assert "   21  conv4_2  512 x 8 x 8" in out and "pool5" in out
    assert main(["presets"]) == 0
    assert "gatys-adam" in capsys.readouterr().out


def test_demo_runs_offline(tmp_path):
    assert main(["demo", "-o", str(tmp_path / "d"), "--size", "32", "--steps", "2"]) == 0
    for name in ("demo_content.png", "demo_style.png", "demo_result.png"):
        assert (tmp_path / "d" / name).stat().st_size > 0
    assert read_recipe(tmp_path / "d" / "demo_result.png")["status"] == "done"
