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
