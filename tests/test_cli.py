"""The CLI end to end on tiny generated images: outputs, PNG recipe round trip, exit codes."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

import pytest
from PIL import Image

from impasto.cli import build_parser, default_output, main, repeat_command
from impasto.config import FIELD_NAMES, PRESET_NOTES, PRESETS, StyleConfig, field_docs
from impasto.errors import OutputError
from impasto.flags import FIELD_GROUPS, GROUPS, config_flags, config_from_args
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
    assert set(recipe["final_losses"]) == {"total", "content", "style", "tv", "temporal"}
    lines = (tmp_path / "out.losses.csv").read_text().splitlines()
    assert lines[0] == "step,scale,time,total,content,style,tv,temporal" and len(lines) == 4
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
    with pytest.raises(SystemExit) as e:
        main(["stylize", "only-content.png"])
    assert e.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def _usage_error(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, (argv, err)
    return err


def test_a_mistyped_flag_gets_the_closest_real_one_for_every_command(capsys):
    """Issue 28: as the web API and config keys do. Every command's longest flag, a letter dropped from its middle."""
    assert "did you mean --style-weight?" in _usage_error(["stylize", "c.png", "s.png", "--style-wieght", "30"], capsys)
    assert "did you mean --style-weight?" in _usage_error(["stylize", "c.png", "s.png", "--style-wieght=30"], capsys)
    assert "did you mean" not in _usage_error(["stylize", "c.png", "s.png", "--zzzzzz"], capsys)
    assert "did you mean --version?" in _usage_error(["--verison"], capsys)
    commands = next(a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"stylize", "recipe", "layers", "sweep"} <= set(commands)
    for name, sub in commands.items():
        flag = max((o for a in sub._actions for o in a.option_strings if o.startswith("--")), key=len)
        typo = flag[: len(flag) // 2] + flag[len(flag) // 2 + 1 :]
        err = _usage_error([name, typo], capsys)  # unrecognized, or a required argument missing: either says it
        assert f"did you mean {flag}?" in err and f"(see impasto {name} --help)" in err, (name, err)


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


# -- help, start-up, presets, layers, recipe, default names (issue #14) ------------------------------------------
def stylize_help(capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(["stylize", "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def help_sections(text: str) -> dict[str, str]:
    """--help's groups: title → its lines (a title is an unindented line ending in ':')."""
    sections: dict[str, str] = {}
    title = None
    for line in text.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            title = line[:-1]
            sections[title] = ""
        elif title is not None:
            sections[title] += line + "\n"
    return sections


def test_every_field_is_in_a_help_group():
    assert sorted(FIELD_GROUPS) == sorted(FIELD_NAMES), "add the new StyleConfig field to flags.FIELD_GROUPS"
    assert set(FIELD_GROUPS.values()) <= set(GROUPS)


def test_stylize_help_is_grouped_with_choices_flags_and_readable_defaults(capsys):
    text = stylize_help(capsys)
    sections = help_sections(text)
    titles = [t for t in sections if t in GROUPS.values()]
    assert titles == list(GROUPS.values())  # every group, common settings first
    assert list(sections).index(GROUPS["common"]) < list(sections).index("examples")
    docs = field_docs()
    for name, group in FIELD_GROUPS.items():
        flag = "--" + name.replace("_", "-")
        assert f"  {flag} " in sections[GROUPS[group]] or f"  {flag}," in sections[GROUPS[group]], (name, group)
        if name != "preset":  # each flag's help is its field's docstring
            assert " ".join(docs[name].replace("``", "").split()[:2]) in " ".join(sections[GROUPS[group]].split())
    common = sections[GROUPS["common"]]
    assert common.index("--output") < common.index("--preset") < common.index("--size") < common.index("--seed")
    assert "--optimizer {adam,lbfgs}" in text and "--preserve-color {none,luminance,histogram,palette}" in text
    assert "[default: √2 ≈ 1.414]" in text and "1.4142135623730951" not in text
    assert "``" not in text and "None" not in text
    assert "--checkpoint, --no-checkpoint" in text and "CHECKPOINT" not in text
    assert "usage: impasto stylize CONTENT STYLE [STYLE ...] [-o OUTPUT]" in text


def test_boolean_settings_are_flags():
    parse = build_parser().parse_args
    assert parse(["stylize", "c.png", "s.png"]).checkpoint is None  # not given: the preset's or the default
    assert config_from_args(parse(["stylize", "c.png", "s.png", "--checkpoint"])).checkpoint is True
    assert parse(["stylize", "c.png", "s.png", "--no-checkpoint"]).checkpoint is False


def test_help_and_usage_errors_do_not_import_torch(tmp_path):
    """Counted, not timed: what `impasto …` has imported when it is done parsing (a subprocess, a fresh interpreter)."""
    probe = ("import sys, impasto.cli\n"
             "try:\n    code = impasto.cli.main(sys.argv[1:])\n"
             "except SystemExit as e:\n    code = e.code\n"
             "print('exit', code, 'torch' in sys.modules, file=sys.stderr)\n")
    existing = tmp_path / "taken.png"
    existing.write_bytes(b"")
    for argv, code in [(["--help"], 0), (["stylize", "--help"], 0), (["stylize"], 2), (["sweep", "--help"], 0),
                       (["stylize", "c.png", "s.png", "--steps", "-3"], 2),
                       (["stylize", "c.png", "s.png", "--optimizer", "adm"], 2),
                       (["stylize", "c.png", "s.png", "-o", str(existing)], 2), (["presets"], 0)]:
        run = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
        assert run.stderr.splitlines()[-1] == f"exit {code} False", (argv, run.stderr)


def test_a_missing_or_bad_input_is_reported_before_torch_loads(image_files, tmp_path):
    """Issue 28: a mistyped path took 3-4 s (torch's import) to report; now as quick as a bad flag, in load_image's
    words. Counted, not timed: ``torch`` is not in sys.modules after the error (a subprocess, a fresh interpreter)."""
    from impasto.errors import ImageError
    from impasto.io.images import load_image

    probe = ("import sys, impasto.cli\n"
             "code = impasto.cli.main(sys.argv[1:])\n"
             "print('exit', code, 'torch' in sys.modules, file=sys.stderr)\n")
    content, style = str(image_files["content"]), str(image_files["style"])
    missing, empty, folder = tmp_path / "misspelt.png", tmp_path / "empty.png", tmp_path / "a folder"
    empty.write_bytes(b"")
    folder.mkdir()
    out = str(tmp_path / "out.png")
    for argv, bad in [(["stylize", str(missing), style, "-o", out], missing),
                      (["stylize", content, style, str(empty), "-o", out], empty),
                      (["stylize", str(folder), style], folder),
                      (["batch", content, "--style", str(missing), "-o", str(tmp_path / "b")], missing),
                      (["video", str(missing), style, "-o", str(tmp_path / "v.mp4")], missing),
                      (["video", str(folder), str(empty), "-o", str(tmp_path / "v.mp4")], empty)]:
        run = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
        *lines, last = run.stderr.splitlines()
        assert last == "exit 2 False" and len(lines) == 1 and str(bad) in lines[0], (argv, run.stderr)
        if argv[0] == "stylize":
            with pytest.raises(ImageError) as e:
                load_image(bad)
            assert lines[0] == f"impasto: error: {e.value}"  # the words the engine would have said, 3-4 s later
    assert not (tmp_path / "b").exists() and not (tmp_path / "out.png").exists()


def test_the_package_loads_its_public_names_on_first_use():
    code = ("import sys, impasto\n"
            "assert 'torch' not in sys.modules and 'stylize' in dir(impasto) and 'sweep' in dir(impasto)\n"
            "from impasto import StyleConfig, ConfigError\n"
            "assert 'torch' not in sys.modules\n"
            "from impasto import stylize\n"
            "assert 'torch' in sys.modules and stylize is impasto.api.stylize\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_usage_errors_name_the_program(capsys):
    for argv, see in [(["stylize"], "(see impasto stylize --help)"), (["nope"], "(see impasto --help)")]:
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert err.endswith(see + "\n") and "impasto impasto" not in err


def test_presets_are_a_readable_table(capsys):
    assert sorted(PRESET_NOTES) == sorted(PRESETS)  # a new preset needs its one line
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert f"{name}  " in out and PRESET_NOTES[name] in out
    assert "--style-weight 1e+06" in out and "--optimizer lbfgs" in out
    assert "(" not in out.replace("(impasto's defaults)", "") and max(map(len, out.splitlines())) <= 120


def test_layers_marks_the_defaults(capsys):
    assert main(["layers", "--size", "64"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line[:5].strip().isdigit()}
    assert lines["relu4_2"].endswith("content") and lines["relu4_1"].endswith("style")
    assert lines["relu1_1"].endswith("style ×4") and lines["relu5_1"].endswith("style ×0.1")  # the weights, when not 1
    assert not lines["conv4_2"].endswith(("content", "style"))


def test_config_flags_round_trip_every_field():
    cfg = StyleConfig(
        size=300, shape=(40, 50), start_size=None, scale_factor=1.5, steps=7, first_steps=9, scale_steps=(5, 4),
        optimizer="lbfgs", lr=0.5, content_weight=2, style_weight=3.5e6, tv_weight=1e-3, temporal_weight=30,
        content_layers=("relu3_1", "relu4_2"), style_layers=(("relu1_1", 0.5), ("conv2_1", 2.0)),
        style_blend=(0.3, 0.7), style_scale=0.5, init="noise", seed=7, device="cpu", weights="torchvision",
        pooling="avg", loss_norm="classic", style_loss="gram", param="normalized", ema=0.99, tol=1e-3,
        preserve_color="luminance", tile_size=64, precision="fp32", checkpoint=True, save_every=3, max_pixels=1000,
        masks=("sky.png", "bridge.png"), keep_mask="face.png", style_masks=("none", "part.png"), mask_rule="inside",
        mask_feather=0.02, size_side="short", adam_beta2=0.999, style_fit="stretch", neighbour_mix=0.5,
        neighbour_refresh=4, neighbour_rotations=True, padding="reflect", strength=0.6,
        print_size="4x3in@40dpi", bit_depth=16, background="#102030", neighbour_rarity=1.5)
    words = config_flags(cfg.to_dict())
    # mask_colors is the other way to give masks: it cannot be set with them
    differing = [n for n in FIELD_NAMES if n not in ("preset", "device", "style_loss", "mask_colors")]
    assert sorted(w[2:].replace("-", "_") for w in words if w.startswith("--")) == sorted(differing)
    args = build_parser().parse_args(["stylize", "c.png", "s.png", *words])
    assert config_from_args(args).replace(device="cpu") == cfg
    off = config_flags(StyleConfig().to_dict(), cfg)
    assert "--no-checkpoint" in off and "--start-size" in off and "False" not in off


def test_recipe_prints_a_command_that_runs_as_is(image_files, tmp_path, capsys):
    content = tmp_path / "my photo.png"  # a space: the command is shell-quoted
    image_files["content"].rename(content)
    out = tmp_path / "first.png"
    assert main(["stylize", str(content), str(image_files["style"]), "-o", str(out), *TINY, "--checkpoint",
                 "--style-layers", "relu1_1:1,relu2_1:0.5", "--seed", "3", "--preset", "gatys-adam"]) == 0
    capsys.readouterr()
    assert main(["recipe", str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("to repeat: impasto stylize ")
    words = shlex.split(line.removeprefix("to repeat: "))
    assert words[2:4] == [str(content), str(image_files["style"])] and "--checkpoint" in words
    assert "--preset" in words and "False" not in words and "True" not in words and "-o" not in words
    assert "--optimizer" not in words  # the preset's already: only what differs
    assert main(words[1:]) == 0  # as is: no -o, so the default name beside the content
    again = tmp_path / f"my photo-{image_files['style'].stem}.png"
    first, second = read_recipe(out)["config"], read_recipe(again)["config"]
    assert first == second


def test_recipe_command_uses_absolute_paths_and_runs_from_another_folder(image_files, tmp_path, capsys, monkeypatch):
    """Issue 28: inputs typed relative to one folder are repeated as absolute paths; URLs are left as they are."""
    monkeypatch.chdir(tmp_path)
    assert main(["stylize", "content.png", "style.png", "-o", "first.png", *TINY]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["recipe", str(tmp_path / "first.png")]) == 0
    words = shlex.split(capsys.readouterr().out.splitlines()[-1].removeprefix("to repeat: "))
    assert words[2:4] == [str(image_files["content"]), str(image_files["style"])]
    assert main([*words[1:], "-o", "again.png"]) == 0  # from another folder: the inputs are found
    assert (elsewhere / "again.png").exists()
    url = "https://example.org/a b.jpg"
    line = repeat_command({"inputs": {"content": url, "styles": ["/x/my style.png"]}, "config": {}})
    assert shlex.split(line)[2:4] == [url, "/x/my style.png"] and "'https://example.org/a b.jpg'" in line


def test_default_output_beside_the_content_never_overwrites(tmp_path):
    c, s1, s2 = str(tmp_path / "photo.jpg"), "styles/starry.jpg", "https://example.org/art/the%20scream.png?x=1"
    assert default_output(c, [s1]) == tmp_path / "photo-starry.png"
    assert default_output(c, [s1, s2]) == tmp_path / "photo-starry+the_scream.png"
    assert default_output("https://example.org/p/cat.jpg", [s1]).as_posix() == "cat-starry.png"  # a URL: here
    (tmp_path / "photo-starry.png").write_bytes(b"")
    assert default_output(c, [s1]) == tmp_path / "photo-starry-2.png"
    (tmp_path / "photo-starry-2.png.ckpt").write_bytes(b"")  # an interrupted run's name is taken too
    assert default_output(c, [s1]) == tmp_path / "photo-starry-3.png"
    assert default_output(c, [s1], resume=True) == tmp_path / "photo-starry-2.png"  # --resume finds it
    with pytest.raises(OutputError, match="nothing to resume"):
        default_output(c, ["other.jpg"], resume=True)
