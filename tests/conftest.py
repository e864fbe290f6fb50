"""Shared fixtures: tiny generated images (the suite never needs ../shared), a random-weight VGG, a float64 copy of the bundled one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from impasto.samples import sample_content, sample_style


@pytest.fixture(scope="session")
def vgg64():
    """A float64 copy of the bundled network, for the oracles that compare two summation orders (a batch against
    single runs, tiles against the whole image): in float32, Adam can turn their rounding into whole steps on
    pixels whose gradient is near zero. A copy, because load_vgg is cached and its module is shared."""
    import copy

    from impasto.weights import load_vgg

    return copy.deepcopy(load_vgg("bundled")).double()


@pytest.fixture(scope="session")
def content_img():
    return sample_content(64, 48, seed=1)


@pytest.fixture(scope="session")
def style_img():
    return sample_style(48, 48, seed=2)


@pytest.fixture(scope="session")
def style2_img():
    return sample_style(40, 56, seed=3).rotate(90, expand=True)


@pytest.fixture
def image_files(tmp_path: Path, content_img, style_img, style2_img) -> dict[str, Path]:
    paths = {"content": tmp_path / "content.png", "style": tmp_path / "style.png", "style2": tmp_path / "style2.png"}
    content_img.save(paths["content"])
    style_img.save(paths["style"])
    style2_img.save(paths["style2"])
    return paths


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files for sweeps: a 48×36 content, a 40×40 style and a second style of another look (the study's blends)."""
    d = tmp_path_factory.mktemp("inputs")
    paths = {"content": d / "content.png", "style": d / "style.png", "style2": d / "style2.png"}
    sample_content(48, 36).save(paths["content"])
    sample_style(40, 40).save(paths["style"])
    sample_style(40, 40, seed=3).transpose(Image.Transpose.ROTATE_90).save(paths["style2"])
    return paths


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session", autouse=True)
def _calibrated(tmp_path_factory: pytest.TempPathFactory):
    """A calibration cache of the suite's own (``IMPASTO_CACHE_DIR``, inherited by the CLI's subprocesses), holding
    figures for this machine at every thread count and precision: a run with a progress bar would otherwise measure
    the machine first (seconds). The figures are stated, not measured; tests/test_estimate.py measures."""
    import json
    import os

    from impasto import calibrate

    folder = tmp_path_factory.mktemp("cache")
    old = os.environ.get("IMPASTO_CACHE_DIR")
    os.environ["IMPASTO_CACHE_DIR"] = str(folder)
    figures = {"overhead_s": 0.01, "vgg_flops_per_s": 3e10, "matmul_flops_per_s": 6e10, "startup_s": 0.5,
               "measured_at": "2026-01-01T00:00:00Z", "took_s": 4.0}
    entries = {}
    for threads in range(1, (os.cpu_count() or 1) + 1):
        for precision in ("fp32", "bf16", "fp16"):
            info = {**calibrate.machine(torch.device("cpu"), precision), "threads": str(threads)}
            entries[json.dumps(info, sort_keys=True)] = figures
    calibrate.cache_file().write_text(json.dumps({"entries": entries}))
    yield folder
    if old is None:
        os.environ.pop("IMPASTO_CACHE_DIR", None)
    else:
        os.environ["IMPASTO_CACHE_DIR"] = old
