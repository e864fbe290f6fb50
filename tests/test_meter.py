"""The quality meter (impasto/meter.py): CIELAB against tabulated values, the colour distance's metric properties, the
meter's zeros on its own targets, blends as Gram blends, and the Gram distances against an explicit oracle."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.api import Distances, Meter, measure
from impasto.meter import STYLE14_LAYERS, STYLE_LAYERS, colour_distance, srgb_to_lab
from impasto.samples import sample_content, sample_style

SIZE = 40  # the meter's long side in these tests

# Bruce Lindbloom's calculator (sRGB, D65, no adaptation): 8-bit RGB → L*, a*, b*.
KNOWN_LAB = [
    ((255, 255, 255), (100.0, 0.0, 0.0)),
    ((0, 0, 0), (0.0, 0.0, 0.0)),
    ((255, 0, 0), (53.2408, 80.0925, 67.2032)),
    ((0, 255, 0), (87.7347, -86.1827, 83.1793)),
    ((0, 0, 255), (32.2970, 79.1875, -107.8602)),
    ((128, 128, 128), (53.5850, 0.0, 0.0)),
        ((10, 10, 10), (2.7418, 0.0, 0.0)),  # on the linear segments of sRGB's curve and of f(t): 903.3 Y
]


@pytest.mark.parametrize("rgb, lab", KNOWN_LAB)
def test_lab_of_known_colours(rgb: tuple[int, int, int], lab: tuple[float, float, float]) -> None:
    got = srgb_to_lab(torch.tensor(rgb, dtype=torch.float64) / 255)
    assert got.tolist() == pytest.approx(lab, abs=2e-3)


def test_lab_keeps_the_shape_and_orders_greys_by_lightness() -> None:
    greys = torch.linspace(0, 1, 11, dtype=torch.float64)[:, None].expand(-1, 3)
    lab = srgb_to_lab(greys.reshape(1, 11, 3))
    assert lab.shape == (1, 11, 3)
    assert bool((lab[0, 1:, 0] > lab[0, :-1, 0]).all()) and float(lab[..., 1:].abs().max()) < 1e-3


def _lab_cloud(n: int = 3000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([60.0, 80, 80]) + torch.tensor(
        [20.0, -40, -40])


def test_colour_distance_is_zero_for_identical_distributions_and_symmetric() -> None:
    a, b = _lab_cloud(), _lab_cloud(seed=1)
    assert colour_distance(a, a) == 0.0
    assert colour_distance(a, a[torch.randperm(len(a))]) == 0.0  # the order of pixels does not matter
    assert colour_distance(torch.cat([a, a, a]), a) == 0.0  # nor their count
    assert colour_distance(a, b) == colour_distance(b, a) > 0


@pytest.mark.parametrize("shift", [(0.0, 10.0, 0.0), (5.0, 0.0, 0.0), (0.0, 3.0, -4.0)])
def test_a_uniform_colour_cast_reads_as_its_delta_e(shift: tuple[float, float, float]) -> None:
    a = _lab_cloud()
    d = math.dist((0, 0, 0), shift)
    assert colour_distance(a, a + torch.tensor(shift)) == pytest.approx(d, rel=0.02)


def test_a_larger_hue_rotation_is_farther() -> None:
    a = _lab_cloud()

    def rotated(deg: float) -> torch.Tensor:
        t = math.radians(deg)
        rot = torch.tensor([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]],
                           dtype=torch.float64)
        return (a - torch.tensor([0, 30.0, 0])) @ rot.T  # a cloud off the grey axis, turned about it

    off = a - torch.tensor([0, 30.0, 0])
    d = [colour_distance(off, rotated(x)) for x in (10, 40, 90)]
    assert 0 < d[0] < d[1] < d[2]


def test_weights_pool_like_repeated_pixels() -> None:
    a, b = _lab_cloud(500), _lab_cloud(700, seed=2)
    pooled = torch.cat([a, b])
    w = torch.cat([torch.full((500,), 3.0), torch.full((700,), 1.0)])
    other = _lab_cloud(400, seed=5)
    assert colour_distance(pooled, other, w) == pytest.approx(colour_distance(torch.cat([a, a, a, b]), other),
                                                              abs=1e-9)


# -- the meter ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def images() -> dict[str, Image.Image]:
    return {"content": sample_content(48, 36, seed=1), "style": sample_style(48, 36, seed=2),
            "style2": sample_style(36, 36, seed=4)}


def test_the_meter_reads_zero_on_its_own_targets(images: dict[str, Image.Image]) -> None:
    c, s = images["content"], images["style"]  # the same shape, so the style is measured at its own size
    meter = Meter(c, s, size=SIZE)
    on_style, on_content = meter(s), meter(c)
    assert isinstance(on_style, Distances)
    assert on_style.style == on_style.style14 == on_style.colour == 0.0 and on_style.content > 0.1
    assert on_content.content == 0.0 and on_content.style > 0.1 and on_content.colour > 1.0
    assert set(on_content.layers) == set(STYLE_LAYERS)
    assert on_content.as_dict()["relu5_1"] == on_content.layers["relu5_1"]


def test_the_gram_distances_match_an_explicit_oracle(images: dict[str, Image.Image]) -> None:
    """‖G(out) − G*‖/‖G*‖ per layer with G = FFᵀ/(HW), written out in numpy on the meter's own network."""
    c, s = images["content"], images["style"]
    meter = Meter(c, s, size=SIZE)
    out = sample_content(48, 36, seed=7)

    def feats(im: Image.Image) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.asarray(im.resize((40, 30), Image.Resampling.BICUBIC), dtype=np.float32) / 255)
        with torch.no_grad():
            f = meter.model(x.permute(2, 0, 1)[None], [*STYLE_LAYERS, "relu4_2"])
        return {k: v[0].double().numpy() for k, v in f.items()}

    fo, fs, fc = feats(out), feats(s), feats(c)
    per = {}
    for k in STYLE_LAYERS:
        a, b = fo[k].reshape(len(fo[k]), -1), fs[k].reshape(len(fs[k]), -1)
        ga, gb = a @ a.T / a.shape[1], b @ b.T / b.shape[1]
        per[k] = np.sqrt(((ga - gb) ** 2).sum()) / np.sqrt((gb**2).sum())
    d = meter(out)
    assert d.layers == pytest.approx(per, rel=1e-6)
    assert d.style == pytest.approx(np.mean(list(per.values())), rel=1e-6)
    assert d.style14 == pytest.approx(np.mean([per[k] for k in STYLE14_LAYERS]), rel=1e-6)
    assert d.style14 != pytest.approx(d.style, rel=1e-3)  # relu5_1 is really left out
    content = np.linalg.norm(fo["relu4_2"] - fc["relu4_2"]) / np.linalg.norm(fc["relu4_2"])
    assert d.content == pytest.approx(content, rel=1e-6)


def test_blends_are_gram_blends(images: dict[str, Image.Image]) -> None:
    c, s1, s2 = images["content"], images["style"], images["style2"]
    both = Meter(c, [s1, s2], size=SIZE)
    out = sample_content(48, 36, seed=7)
    alone = Meter(c, s1, size=SIZE)(out)
    assert both(out, [1, 0]) == alone  # a zero weight drops a style entirely (Grams and pixels)
    assert both(out, [2, 2]) == both(out, [0.5, 0.5]) == both(out)  # weights are normalised; none: equal
    grams, _ = both.target([0.2, 0.8])
    for k in STYLE_LAYERS:
        torch.testing.assert_close(grams[k], 0.2 * both.style_grams[0][k] + 0.8 * both.style_grams[1][k])
    assert both(out, [0.2, 0.8]).style != both(out, [0.8, 0.2]).style
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]):
        with pytest.raises(impasto.ConfigError, match="blend") as e:
            both(out, bad)
        assert e.value.key == "blend"


def test_colour_follows_the_palette_not_the_texture(images: dict[str, Image.Image]) -> None:
    c, s = images["content"], images["style"]
    meter = Meter(c, s, size=SIZE)
    swapped = Image.fromarray(np.asarray(s)[..., ::-1].copy())  # RGB → BGR: the palette's hues turn
    shuffled = Image.fromarray(np.random.default_rng(0).permutation(np.asarray(meter.pixels(s)).reshape(-1, 3))
                               .reshape(30, 40, 3))  # the same pixels, no strokes left
    assert meter(shuffled).colour == 0.0 < meter(shuffled).style14
    assert meter(swapped).colour > 5.0
    assert measure(s, c, s, size=SIZE) == meter(s)  # the one-off call is the same meter


def test_meter_refuses_a_bad_size(images: dict[str, Image.Image]) -> None:
    with pytest.raises(impasto.ConfigError, match="size = 4 is invalid") as e:
        Meter(images["content"], images["style"], size=4)
    assert e.value.key == "size"


def test_bench_quality_prints_the_old_and_new_measures(images: dict[str, Image.Image], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("quality", Path(__file__).parents[1] / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    for k, im in images.items():
        im.save(tmp_path / f"{k}.png")
    assert quality.main([str(tmp_path / "style.png"), "--content", str(tmp_path / "content.png"), "--style",
                         str(tmp_path / "style.png"), "--size", str(SIZE)]) == 0
    head, row = capsys.readouterr().out.splitlines()
    assert head.split()[1:6] == ["style", "style14", "content", "colour", "relu1_1"]
    assert [float(x) for x in row.split()[1:5]][:2] == [0.0, 0.0]
    d = quality.Meter(tmp_path / "content.png", tmp_path / "style.png", SIZE)(tmp_path / "content.png")
    assert d["content"] == 0.0 and {"style", "style14", "colour", *STYLE_LAYERS} <= set(d)


def test_the_docs_meter_example_runs(images: dict[str, Image.Image], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).parents[1] / "docs" / "reference" / "python-api.md").read_text(encoding="utf-8")
    code = text.split("## The quality meter", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "impasto.Meter(" in code and "size=400" in code
    monkeypatch.chdir(tmp_path)
    for name, im in (("photo.jpg", images["content"]), ("style.jpg", images["style"]), ("style2.jpg", images["style2"]),
                     ("out.png", images["style"])):
        im.save(name)
    scope: dict[str, object] = {"impasto": impasto}
    exec(code.replace("size=400", f"size={SIZE}"), scope)  # a small meter: the same code
    d = scope["d"]
    assert isinstance(d, Distances) and d.content > 0 and d.colour > 0


def test_copying_sees_a_part_of_the_painting_pasted_into_the_photo() -> None:
    """A 'face' (a distinctive patch) marked in the painting: pasted into the photo, the share of the picture's
    locations whose nearest painting location lies in it jumps; the photo alone scores about nothing."""
    rng = np.random.default_rng(4)
    painting = np.full((128, 128, 3), 200, np.uint8)
    painting[..., 2] = rng.integers(150, 250, (128, 128))  # a bluish wash
    face = (rng.random((48, 48, 3)) * 255).astype(np.uint8)  # a busy, colourful patch: the painting's "face"
    painting[16:64, 64:112] = face
    photo = np.asarray(sample_content(128, 128, seed=5)).copy()
    pasted = photo.copy()
    pasted[40:104, 20:84] = np.asarray(Image.fromarray(face).resize((64, 64)))
    meter = Meter(Image.fromarray(photo), Image.fromarray(painting), size=128)
    box = [(0.5, 0.125, 0.875, 0.5)]
    clean, copied = meter.copying(Image.fromarray(photo), box), meter.copying(Image.fromarray(pasted), box)
    assert copied > clean + 0.1 and copied > 0.15, (clean, copied)
    assert meter.copying(Image.fromarray(pasted), [(0.0, 0.6, 0.2, 1.0)]) < copied  # another part: not the patch
    with pytest.raises(impasto.ConfigError, match="style = 3"):
        meter.copying(Image.fromarray(photo), box, style=3)
