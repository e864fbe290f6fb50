"""``impasto doctor`` and the estimate a run prints first, through the CLI, on the suite's calibration (conftest):
the lines a user reads, and an estimate that follows the plan (coarse-to-fine, tiles) and the machine's figures."""

from __future__ import annotations

import json

import pytest
import torch

from impasto import calibrate
from impasto.api import estimate_run
from impasto.cli import main
from impasto.core.precision import cpu_has_native_bf16
from impasto.estimate import estimate, plan_cost


def test_doctor_says_device_precision_and_why_threads_figures_and_expectations(capsys) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    rows = {line[:12].strip(): line[12:] for line in out.splitlines() if line[:12].strip()}
    assert rows["device"].startswith("cpu (auto: no CUDA GPU") or not rows["device"].startswith("cpu")
    precision = "bf16" if cpu_has_native_bf16() else "fp32"
    assert rows["precision"].startswith(f"{precision} (auto: this CPU has")
    assert ("no AVX512-BF16" in rows["precision"]) == (precision == "fp32")
    assert f"{torch.get_num_threads()} threads" in rows["threads"]
    # the suite's figures (conftest): 10 ms a step, 30 GFLOP/s, 60 GFLOP/s
    assert "10 ms fixed + VGG at 30.0 GFLOP/s; matrix products 60.0 GFLOP/s" in out
    assert "impasto demo: about" in out and "a 512 px default run: about" in out and "--preset preview: about" in out


def test_a_run_prints_its_estimate_first_and_a_quicker_way_when_it_is_long(image_files, tmp_path, capsys,
                                                                           monkeypatch) -> None:
    args = ["stylize", str(image_files["content"]), str(image_files["style"]), "--size", "32", "--steps", "1",
            "--start-size", "16", "--style-layers", "relu1_1", "--content-layers", "relu1_1"]
    assert main([*args, "-o", str(tmp_path / "a.png")]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("impasto: about ") and " here (cpu, " in first and "3 scales up to 32x24, 4 steps" in first
    assert "quicker" not in first  # well under a minute on the suite's figures
    # a machine a million times slower: the same run passes a minute, and the line says what would be quicker
    monkeypatch.setenv("IMPASTO_CACHE_DIR", str(tmp_path))
    slow = {"overhead_s": 5.0, "vgg_flops_per_s": 3e6, "matmul_flops_per_s": 3e6, "startup_s": 0.5,
            "measured_at": "2026-01-01T00:00:00Z", "took_s": 4.0}
    device = torch.device("cpu")
    precision = "bf16" if cpu_has_native_bf16() else "fp32"
    key = json.dumps(calibrate.machine(device, precision), sort_keys=True)
    (tmp_path / "calibration.json").write_text(json.dumps({"entries": {key: slow}}))
    assert main([*args, "-o", str(tmp_path / "b.png")]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert "about 40 s here" in first and "quicker" not in first  # 4 steps of 5 s, 4 setups, 0.5 s weights
    assert main([*args, "--steps", "40", "-o", str(tmp_path / "c.png")]) == 0  # 160 steps: minutes at 5 s a step
    first = capsys.readouterr().err.splitlines()[0]
    assert " here (cpu, " in first and "for a quicker first look: --preset preview (about" in first
    assert "--size 64" not in first  # nothing smaller than 64 px is suggested


@pytest.mark.parametrize("tile", [0, 64])
def test_the_estimate_follows_the_plan_with_scales_and_tiles(image_files, tile: int) -> None:
    fc, text = estimate_run(image_files["content"], image_files["style"], size=256, start_size=128, steps=3,
                            tile_size=tile, device="cpu")  # nothing runs: the estimate only
    sizes = [(96, 128), (136, 181), (192, 256)]  # the 64x48 photo at 128 px, × √2, then at 256
    layers = sorted(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"])
    style = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    costs = plan_cost(sizes, [6, 3, 3], layers=layers, style_layers=style,
                      style_sizes=[[(128, 128)], [(181, 181)], [(256, 256)]], tile=tile, halo=96)
    by_hand = estimate(costs, fc.calibration.rates)  # type: ignore[union-attr]
    assert fc.estimate == by_hand
    assert (costs[-1].passes > 1) == bool(tile)  # 256 px in 64 px tiles: several tiles a step
    assert "3 scales up to 256x192, 12 steps" in text
