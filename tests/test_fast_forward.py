"""`impasto sweep --fast-forward K` (issue 28: the README's quick study showed eight copies of the photo): each variant
runs 1/K of its steps at K × its learning rate, so a long Adam study can be looked at in minutes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.cli import main
from impasto.errors import ConfigError
from impasto.experiments import load_experiment
from impasto.experiments.quick import fast_forwarded
from test_experiments import BASE

ROOT = Path(__file__).resolve().parents[1]

TINY = BASE + """lr = 0.01

[[variant]]
name = "plain"
note = "the base: 4 steps at lr 0.01"

[[variant]]
name = "slow"
note = "half the rate for twice the steps"
lr = 0.005
steps = 8
"""


def test_report_toml_keeps_its_trains_ratios() -> None:
    example = load_experiment(ROOT / "examples" / "report.toml")
    quick = fast_forwarded(example, 10)
    t1, t4 = quick["train1"].config, quick["train4"].config
    assert (t1.steps, t1.lr) == (100, 0.03) and (t4.steps, t4.lr) == (200, 0.01)  # 1000 @ 0.003, 2000 @ 0.001
    assert t4.steps / t1.steps == example["train4"].config.steps / example["train1"].config.steps
    assert quick.base.steps == 100 and quick.base.lr == 0.03
    for name in ("train2", "train3", "train5", "train6", "train7a", "train7b"):  # the rest: only steps and lr move
        before, after = example[name].config, quick[name].config
        assert after.replace(steps=before.steps, lr=before.lr) == before, name
    # Each note says what ran where it states a value that changed (the sheet's first line).
    assert quick["train1"].note.startswith("[ran steps = 100, not 1000, lr = 0.03, not 0.003] baseline"), quick["train1"].note
    assert quick["train4"].note.startswith("[ran steps = 200, not 2000, lr = 0.01, not 0.001] lr 0.001"), quick["train4"].note
    assert fast_forwarded(example, 1) is example


def test_every_schedule_field_is_cut_and_never_to_zero(tmp_path: Path) -> None:
    p = tmp_path / "exp.toml"
    p.write_text(TINY.replace('first_steps = "none"\n', "first_steps = 7\n").replace(
        'start_size = "none"\n', "start_size = 16\n") + '\n[[variant]]\nname = "listed"\nscale_steps = "9,3,1"\n',
        encoding="utf-8")
    quick = fast_forwarded(load_experiment(p), 3)
    assert quick["plain"].config.steps == 2 and quick["plain"].config.first_steps == 3  # ceil(4/3), ceil(7/3)
    assert quick["slow"].config.steps == 3 and quick["slow"].config.lr == pytest.approx(0.015)
    assert quick["listed"].config.scale_steps == (3, 1, 1)  # ceil(9/3), ceil(3/3), ceil(1/3) = 1, not 0


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "10"])
def test_a_bad_factor_is_one_line(bad: object) -> None:
    example = load_experiment(ROOT / "examples" / "report.toml")
    with pytest.raises(ConfigError, match=r"fast_forward = .* is invalid: give a whole number, 1 or more"):
        fast_forwarded(example, bad)  # type: ignore[arg-type]


def test_lbfgs_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "exp.toml"
    p.write_text(TINY + '\n[[variant]]\nname = "classic"\noptimizer = "lbfgs"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="variant 'classic' runs L-BFGS: run it without --fast-forward"):
        fast_forwarded(load_experiment(p), 2)
    assert main(["sweep", str(p), "--dry-run", "--fast-forward", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "runs L-BFGS" in err


def test_adam_goes_about_as_far_in_fewer_larger_steps(inputs: dict[str, Path]) -> None:
    """Why it works: Adam moves each pixel by about lr a step, so K× the rate for 1/K of the steps ends about as far
    from the photo as the long run, and the same K× fewer steps at the old rate do not (the quick study's eight
    copies of the photo)."""
    with Image.open(inputs["content"]) as im:
        photo = im.convert("RGB")
    base = impasto.StyleConfig(size=32, start_size=None, first_steps=None, device="cpu", tv_weight=0, seed=0)

    def moved(steps: int, lr: float) -> float:
        out = impasto.stylize(inputs["content"], inputs["style"], base.replace(steps=steps, lr=lr)).image
        a = np.asarray(out, dtype=np.float64)
        b = np.asarray(photo.resize(out.size, Image.Resampling.LANCZOS), dtype=np.float64)
        return float(np.abs(a - b).mean())

    long, forwarded, cut = moved(40, 0.005), moved(10, 0.02), moved(10, 0.005)
    assert 0.6 < forwarded / long < 1.5, (long, forwarded)
    assert cut / long < 0.5, (long, cut)


def test_cli_runs_it_and_the_report_repeats_it(inputs: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "exp.toml"
    p.write_text(TINY, encoding="utf-8")
    out = tmp_path / "out"
    code = main(["sweep", str(p), "--content", str(inputs["content"]), "--style", str(inputs["style"]),
                 "-o", str(out), "-q", "--fast-forward", "2"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    assert manifest["overrides"] == {"fast_forward": 2}
    ran = {v["name"]: v for v in manifest["variants"]}
    assert ran["slow"]["total_steps"] == 4 and ran["plain"]["total_steps"] == 2, ran
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "--fast-forward 2" in report
    assert "[ran steps = 2, not 4, lr = 0.02, not 0.01]" in report
