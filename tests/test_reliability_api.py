"""Reliability of the Python API and of settings files (issue 12, classes 3, 6 and 10).

Corpus: 114 inputs. Class 3, silently wrong pictures: 9 tensors that must load right (uint8 as read_image gives
it, uint16, grey, RGBA, a batch of one, half and double precision, resampling overshoot; each against an oracle), 19
that must be refused (NaN, Inf, 0-255 floats, normalised, integer, bool and complex types, batches, channels-last,
empty, meta, tiny), 22 config values of the wrong type (init=None and its kin, 5000-digit numbers, 1e308 steps), 4
accepted forms (Path, torch.device, 1 and "off") and 3 unbounded lists. Class 6, unbounded inputs: 9 TOML files
(arrays, inline tables, headers and keys nested or dotted 20 to 100,000 deep, a 5000-digit integer), each read by
from_toml, ``impasto stylize --config`` and ``impasto sweep --dry-run``, an oversized file, a 200,000-deep value
measured, and 5 experiments (a 100x100x100 grid, an axis of 10^5 values, 2000 variants, variants x grid, the limit
raised). Class 10, misuse at the door: 38 wrong arguments to stylize, stylize_batch and sweep (the engine replaced by
one that fails the test if it is reached), and 3 accepted forms (generators of styles and of dict configs, a sweep's
generator of styles). Images are 32 px; nothing runs VGG.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import impasto
from impasto.bounds import MAX_NESTING, nesting
from impasto.cli import main
from impasto.config import StyleConfig, from_toml
from impasto.errors import ConfigError, ImageError, ImpastoError
from impasto.experiments.spec import MAX_VARIANTS, load_experiment
from impasto.io.images import load_image

FAST = {"size": 32, "start_size": None, "steps": 1, "progress": False}


def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.int16)


def _one_line(e: pytest.ExceptionInfo, *words: str) -> None:
    text = str(e.value)
    assert "\n" not in text and len(text) < 400, text
    for w in words:
        assert w in text, text


# -- class 3: tensors ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rgb8() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)  # (H, W, 3)


def test_uint8_tensor_is_scaled_not_clamped_to_white(rgb8):
    t = torch.from_numpy(rgb8).permute(2, 0, 1)  # what torchvision.io.read_image returns: (3, H, W) uint8
    got = load_image(t).image
    assert np.array_equal(np.asarray(got), rgb8)  # before: every pixel above 0 became 255
    assert np.array_equal(np.asarray(load_image(t.unsqueeze(0)).image), rgb8)


def test_uint8_tensor_runs_like_its_float_twin(rgb8, style_img):
    from impasto.inputs import prepare

    t = torch.from_numpy(rgb8).permute(2, 0, 1)
    cfg = [StyleConfig(size=32, start_size=None, steps=1)]
    a = prepare(t, style_img, cfg, torch.device("cpu"))
    b = prepare(t.float() / 255, style_img, cfg, torch.device("cpu"))
    assert torch.equal(a.content, b.content)


@pytest.mark.parametrize("case", ["grey3d", "grey2d", "rgba", "half", "overshoot", "uint16", "float64"])
def test_other_accepted_tensors_match_their_oracle(case, rgb8):
    grey = rgb8[:, :, 0]
    if case == "grey3d":
        t, want = torch.from_numpy(grey)[None], np.repeat(grey[:, :, None], 3, 2)
    elif case == "grey2d":
        t, want = torch.from_numpy(grey).float() / 255, np.repeat(grey[:, :, None], 3, 2)
    elif case == "rgba":  # composited over white, like an RGBA file
        rgba = np.dstack([rgb8, np.linspace(0, 255, rgb8.shape[1], dtype=np.uint8)[None].repeat(rgb8.shape[0], 0)])
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, "PNG")
        t, want = torch.from_numpy(rgba).permute(2, 0, 1), np.asarray(load_image(buf.getvalue()).image)
    elif case == "half":
        t, want = (torch.from_numpy(rgb8).permute(2, 0, 1).float() / 255).half(), None
    elif case == "overshoot":  # what bicubic resizing leaves: clamped, not refused
        t = torch.from_numpy(rgb8).permute(2, 0, 1).float() / 255 * 1.08 - 0.04
        want = np.clip(rgb8 * 1.08 - 0.04 * 255 + 0.5, 0, 255).astype(np.uint8)
    elif case == "uint16":
        if getattr(torch, "uint16", None) is None:
            pytest.skip("this torch has no uint16")
        t = torch.from_numpy(rgb8.astype(np.int32) * 257).permute(2, 0, 1).to(torch.uint16)
        want = rgb8
    else:
        t, want = torch.from_numpy(rgb8).permute(2, 0, 1).double() / 255, rgb8
    got = np.asarray(load_image(t).image)
    assert got.shape == (*rgb8.shape[:2], 3)
    ref = want if want is not None else rgb8
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


REFUSED_TENSORS = [
    ("nan", lambda: torch.full((3, 16, 16), float("nan")), "NaN"),
    ("one nan", lambda: torch.rand(3, 16, 16).index_put_((torch.tensor([0]),) * 3, torch.tensor(float("nan"))),
     "1 NaN"),
    ("inf", lambda: torch.full((3, 16, 16), float("inf")), "infinite"),
    ("-inf", lambda: torch.full((3, 16, 16), float("-inf")), "infinite"),
    ("0-255 floats", lambda: torch.rand(3, 16, 16) * 255, "divide by 255"),
    ("normalised", lambda: (torch.rand(3, 16, 16) - 0.45) / 0.22, "normalisation"),
    ("int64", lambda: torch.randint(0, 255, (3, 16, 16)), "int64"),
    ("int32", lambda: torch.randint(0, 255, (3, 16, 16), dtype=torch.int32), "int32"),
    ("int8", lambda: torch.zeros(3, 16, 16, dtype=torch.int8), "int8"),
    ("bool", lambda: torch.ones(3, 16, 16, dtype=torch.bool), "bool"),
    ("complex", lambda: torch.zeros(3, 16, 16, dtype=torch.complex64), "complex64"),
    ("batch of 2", lambda: torch.rand(2, 3, 16, 16), "batch of 2"),
    ("channels last", lambda: torch.rand(16, 16, 3), "permute(2, 0, 1)"),
    ("5 channels", lambda: torch.rand(5, 16, 16), "(3, H, W)"),
    ("1-d", lambda: torch.rand(48), "(3, H, W)"),
    ("5-d", lambda: torch.rand(1, 1, 3, 16, 16), "(3, H, W)"),
    ("empty", lambda: torch.rand(3, 0, 16), "no pixels"),
    ("meta", lambda: torch.empty(3, 16, 16, device="meta"), "no pixels"),
    ("tiny", lambda: torch.rand(3, 4, 4), "too small"),
]


@pytest.mark.parametrize("case", REFUSED_TENSORS, ids=[c[0] for c in REFUSED_TENSORS])
def test_tensors_that_would_paint_wrong_are_refused(case):
    _, make, words = case
    with pytest.raises(ImageError) as e:
        load_image(make(), name="style")
    _one_line(e, "style:", words)


def test_a_nan_style_is_refused_before_the_run(content_img):
    with pytest.raises(ImageError, match="NaN"):  # before: a black picture and status "done"
        impasto.stylize(content_img, torch.full((3, 32, 32), float("nan")), **FAST)


# -- class 3: config values of the wrong type ----------------------------------------------------------------------
WRONG_TYPES = [
    ("init", None), ("init", 5), ("init", torch.zeros(3)), ("init", ["content"]), ("init", Image.new("RGB", (8, 8))),
    ("weights", None), ("weights", 1.5), ("device", None), ("device", 0), ("pooling", None), ("pooling", 1),
    ("optimizer", ["adam"]), ("preset", 5), ("checkpoint", None), ("checkpoint", [1]), ("checkpoint", "maybe"),
    ("checkpoint", 2), ("seed", 10**5000), ("lr", 10**5000), ("steps", 1e308), ("scale_steps", [10**7]),
]


@pytest.mark.parametrize("key, value", WRONG_TYPES, ids=[f"{k}={type(v).__name__}" for k, v in WRONG_TYPES])
def test_a_value_of_the_wrong_type_is_a_config_error_not_a_string(key, value):
    with pytest.raises(ConfigError) as e:  # before: init=None was stored as the path 'None'
        StyleConfig(**{key: value})
    assert e.value.key == key
    _one_line(e, key)


def test_init_none_is_refused_and_named():
    with pytest.raises(ConfigError) as e:
        StyleConfig(init=None)
    _one_line(e, "init = None", "content, noise, gaussian")


def test_paths_and_devices_are_taken_as_text(tmp_path):
    assert StyleConfig(init=tmp_path / "x.png").init == str(tmp_path / "x.png")
    assert StyleConfig(weights=tmp_path / "w.pth").weights == str(tmp_path / "w.pth")
    assert StyleConfig(device=torch.device("cpu")).device == "cpu"
    assert StyleConfig(checkpoint=1).checkpoint is True and StyleConfig(checkpoint="off").checkpoint is False


def test_unbounded_lists_and_counts_are_refused():
    with pytest.raises(ConfigError, match="at most once"):
        StyleConfig(content_layers=["relu4_2"] * 100_000)
    with pytest.raises(ConfigError, match="at most 256"):
        StyleConfig(scale_steps=[10] * 1000)
    with pytest.raises(ConfigError, match="tile_size"):
        StyleConfig(tile_size=16 * 10**6)


# -- class 6: nesting and size of settings files --------------------------------------------------------------------
DEEP = 3000
TOML_FILES = [
    ("arrays", "style_layers = " + "[" * DEEP + "]" * DEEP),
    ("inline tables", "style_layers = " + "{a = " * DEEP + "1" + "}" * DEEP),
    ("headers", "[" + ".".join(["a"] * DEEP) + "]\nb = 1"),
    ("headers 100000", "[" + ".".join(["a"] * 100_000) + "]\nb = 1"),  # before the check: minutes in tomllib
    ("dotted key 100000", ".".join(["a"] * 100_000) + " = 1"),
    ("array of tables", "[[" + ".".join(["a"] * 3000) + "]]\nb = 1"),
    ("arrays 20", "style_layers = " + "[" * 20 + "]" * 20),
    ("mixed", "x = [" + "{a = [" * 200 + "1" + "]}" * 200 + "]"),
    ("long integer", "size = " + "9" * 5000),
]


@pytest.mark.parametrize("case", TOML_FILES, ids=[c[0] for c in TOML_FILES])
def test_a_deep_or_long_toml_is_one_line_for_config_and_sweep(case, tmp_path, capsys, image_files):
    name, text = case
    f = tmp_path / "deep.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:  # before: RecursionError (or ValueError) with a traceback
        from_toml(f)
    _one_line(e, str(f))
    for argv in (["stylize", str(image_files["content"]), str(image_files["style"]), "--config", str(f), "-o",
                  str(tmp_path / "o.png")], ["sweep", str(f), "--dry-run"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("impasto: error: ") and "\n" not in err and "Traceback" not in err, err


def test_nesting_is_measured_without_recursion():
    deep: list = []
    for _ in range(200_000):
        deep = [deep]
    t0 = time.perf_counter()
    assert nesting(deep, MAX_NESTING) == MAX_NESTING + 1
    assert time.perf_counter() - t0 < 1
    assert nesting({"style_layers": [["relu1_1", 1.0]]}) == 3 and nesting(5) == 0


def test_an_oversized_toml_is_refused_unread(tmp_path):
    f = tmp_path / "big.toml"
    with open(f, "wb") as out:
        out.truncate(9 * 2**20)  # sparse: 9 MB of zeros
    with pytest.raises(ConfigError, match="over the limit"):
        from_toml(f)


def _grid(tmp_path: Path, axes: dict[str, int], variants: int = 0) -> Path:
    lines = ["[base]", "size = 32"]
    lines += [f'[[variant]]\nname = "v{i}"\nseed = {i}' for i in range(variants)]
    lines += ["[grid]"] + [f"{k} = [{', '.join(str(1e-3 * (i + 1)) if k != 'seed' else str(i) for i in range(n))}]"
                           for k, n in axes.items()]
    f = tmp_path / "grid.toml"
    f.write_text("\n".join(lines) + "\n")
    return f


@pytest.mark.parametrize("axes, variants, count", [
    ({"lr": 100, "seed": 100, "style_weight": 100}, 0, "1,000,000 variants"),
    ({"seed": 10**5}, 0, "100,000 variants"),
    ({}, 2000, "2,000 variants"),
    ({"lr": 30}, 40, "1,200 variants"),
], ids=["100x100x100", "one axis of 10^5", "2000 variants", "variants x grid"])
def test_a_huge_grid_is_counted_before_it_is_expanded(axes, variants, count, tmp_path, capsys):
    f = _grid(tmp_path, axes, variants)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:  # before: --dry-run grew past 3 GB with no answer
        load_experiment(f)
    assert time.perf_counter() - t0 < 5  # counted, not built (a million builds take hours)
    _one_line(e, count, f"limit of {MAX_VARIANTS:,}", "--max-variants")
    assert main(["sweep", str(f), "--dry-run"]) == 2
    assert count in capsys.readouterr().err


def test_the_variant_limit_can_be_raised(tmp_path, capsys):
    f = _grid(tmp_path, {"lr": 30, "seed": 40})
    with pytest.raises(ConfigError):
        load_experiment(f)
    assert len(load_experiment(f, max_variants=1200).variants) == 1200
    assert main(["sweep", str(f), "--dry-run", "--max-variants", "1200"]) == 0
    assert "1200 variants" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="max_variants"):
        load_experiment(f, max_variants=0)


# -- class 10: the public API's arguments at the door ----------------------------------------------------------------
def _closed(im: Image.Image) -> Image.Image:
    im = im.copy()
    im.close()
    return im


MISUSE = [  # (what, call(content, style, tmp_path), error, words)
    ("stop=True", lambda c, s, p: impasto.stylize(c, s, stop=True, **FAST), ConfigError, "stop = True"),
    ("stop=token-like", lambda c, s, p: impasto.stylize(c, s, stop=object(), **FAST), ConfigError, "StopToken"),
    ("output=5", lambda c, s, p: impasto.stylize(c, s, output=5, **FAST), ConfigError, "output = 5"),
    ("output=''", lambda c, s, p: impasto.stylize(c, s, output="", **FAST), ConfigError, "output = ''"),
    ("scale_steps=5", lambda c, s, p: impasto.stylize(c, s, scale_steps=5, **FAST), ConfigError, "scale_steps"),
    ("callback='x'", lambda c, s, p: impasto.stylize(c, s, callback="x", **FAST), ConfigError, "callback = 'x'"),
    ("state='x'", lambda c, s, p: impasto.stylize(c, s, state="x", **FAST), ConfigError, "state = 'x'"),
    ("force='no'", lambda c, s, p: impasto.stylize(c, s, force="no", **FAST), ConfigError, "force"),
    ("progress=None", lambda c, s, p: impasto.stylize(c, s, **{**FAST, "progress": None}), ConfigError, "progress"),
    ("checkpoint=True", lambda c, s, p: impasto.stylize(c, s, checkpoint=True, **FAST), ConfigError, "checkpoint"),
    ("config=5", lambda c, s, p: impasto.stylize(c, s, 5, **FAST), ConfigError, "config must be"),
    ("config='preview'", lambda c, s, p: impasto.stylize(c, s, "preview", **FAST), ConfigError, "preset='preview'"),
    ("closed content", lambda c, s, p: impasto.stylize(_closed(c), s, **FAST), ImageError, "closed"),
    ("closed style", lambda c, s, p: impasto.stylize(c, [s, _closed(s)], **FAST), ImageError, "style image 2"),
    ("styles=None", lambda c, s, p: impasto.stylize(c, None, **FAST), ConfigError, "at least one style"),
    ("styles=[]", lambda c, s, p: impasto.stylize(c, [], **FAST), ConfigError, "at least one style"),
    ("styles=empty gen", lambda c, s, p: impasto.stylize(c, iter([]), **FAST), ConfigError, "at least one style"),
    ("styles=dict", lambda c, s, p: impasto.stylize(c, {"a": s}, **FAST), ConfigError, "list(d.values())"),
    ("styles=5", lambda c, s, p: impasto.stylize(c, 5, **FAST), ImageError, "int is not an image"),
    ("styles=[5]", lambda c, s, p: impasto.stylize(c, [s, 5], **FAST), ImageError, "style image 2"),
    ("content=None", lambda c, s, p: impasto.stylize(None, s, **FAST), ImageError, "content image"),
    ("content=list", lambda c, s, p: impasto.stylize([c], s, **FAST), ImageError, "a list is not an image"),
    ("content=''", lambda c, s, p: impasto.stylize("", s, **FAST), ImageError, "empty string"),
    ("content=ndarray", lambda c, s, p: impasto.stylize(np.zeros((8, 8, 3)), s, **FAST), ImageError, "ndarray"),
    ("batch configs=cfg", lambda c, s, p: impasto.stylize_batch(c, s, StyleConfig(size=32)), ConfigError,
     "list of configs"),
    ("batch configs=[1]", lambda c, s, p: impasto.stylize_batch(c, s, [1]), ConfigError, "configs[0] = 1"),
    ("batch configs=str", lambda c, s, p: impasto.stylize_batch(c, s, "size=32"), ConfigError, "configs"),
    ("batch outputs=5", lambda c, s, p: impasto.stylize_batch(c, s, [StyleConfig(size=32)], outputs=5),
     ConfigError, "outputs = 5"),
    ("batch outputs too many", lambda c, s, p: impasto.stylize_batch(c, s, [StyleConfig(size=32)],
                                                                      outputs=[p / "a.png", p / "b.png"]),
     ConfigError, "2 paths for 1 configs"),
    ("batch outputs=str", lambda c, s, p: impasto.stylize_batch(c, s, [StyleConfig(size=32)], outputs="a.png"),
     ConfigError, "outputs"),
    ("sweep experiment=5", lambda c, s, p: impasto.sweep(5), ConfigError, "experiment = 5"),
    ("sweep stop=True", lambda c, s, p: impasto.sweep(p / "x.toml", stop=True), ConfigError, "stop = True"),
    ("sweep callback", lambda c, s, p: impasto.sweep(p / "x.toml", callback=1), ConfigError, "callback = 1"),
    ("sweep output=5", lambda c, s, p: impasto.sweep(p / "x.toml", output=5), ConfigError, "output = 5"),
    ("sweep max_batch='x'", lambda c, s, p: impasto.sweep(p / "x.toml", max_batch="x"), ConfigError, "max_batch"),
    ("sweep refresh=-1", lambda c, s, p: impasto.sweep(p / "x.toml", refresh=-1), ConfigError, "refresh = -1"),
    ("sweep executor", lambda c, s, p: impasto.sweep(p / "x.toml", executor="local"), ConfigError, "executor"),
    ("sweep styles=dict", lambda c, s, p: impasto.sweep(p / "x.toml", styles={"a": s}), ConfigError, "list("),
]


@pytest.mark.parametrize("case", MISUSE, ids=[c[0] for c in MISUSE])
def test_misuse_is_a_clear_error_at_the_door(case, content_img, style_img, tmp_path, monkeypatch):
    import impasto.api

    def no_engine(*a, **k):
        raise AssertionError("the run started: the argument was not checked at the door")

    monkeypatch.setattr(impasto.api, "_run", no_engine)
    _, call, error, words = case
    with pytest.raises(error) as e:  # before: AttributeError, TypeError or IndexError from deep inside
        call(content_img, style_img, tmp_path)
    assert isinstance(e.value, ImpastoError)
    _one_line(e, words)


@pytest.fixture
def prepared(monkeypatch) -> list:
    """The engine replaced by one that records what it was given and returns the starting state."""
    import impasto.api

    seen: list = []

    def run(cfgs, prepared, state, device, on_step, stop):
        seen.append(prepared)
        return state

    monkeypatch.setattr(impasto.api, "_run", run)
    return seen


def test_a_generator_of_styles_is_read_once_and_used(content_img, style_img, style2_img, prepared):
    impasto.stylize(content_img, [style_img, style2_img], **FAST)
    impasto.stylize(content_img, (s for s in [style_img, style2_img]), **FAST)  # before: "give at least one style"
    listed, generated = prepared
    assert len(generated.styles) == 2
    assert all(torch.equal(a, b) for a, b in zip(listed.styles, generated.styles))
    batch = impasto.stylize_batch(content_img, iter([style_img]), (c for c in [{"size": 32, "start_size": None,
                                                                                  "steps": 1}]))
    assert batch[0].config.size == 32 and len(prepared[-1].styles) == 1


def test_a_sweep_takes_a_generator_of_styles(content_img, style_img, style2_img, tmp_path, prepared):
    f = tmp_path / "tiny.toml"
    f.write_text('[base]\nsize = 32\nstart_size = "none"\nsteps = 1\n')
    impasto.sweep(f, content=content_img, styles=(s for s in [style_img, style2_img]), output=tmp_path / "out",
                  progress=False, plots=False, refresh=0)
    assert len(prepared) == 1 and len(prepared[0].styles) == 2
