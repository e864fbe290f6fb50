"""StyleConfig: coercion by field type, ConfigError.key, cross-field rules, presets and TOML line numbers."""

from __future__ import annotations

import pickle
from typing import Literal, get_args, get_origin, get_type_hints

import pytest

from impasto import coercion, config
from impasto.config import FIELD_NAMES, PRESETS, StyleConfig, from_dict, from_toml, preset
from impasto.errors import ConfigError

# (field, its annotation's kind, accepted inputs → canonical value, a rejected input → words of its message)
ACCEPTED = [
    ("size", "int", [("256", 256), (256, 256), (256.0, 256), ("2.56e2", 256)]),
    ("start_size", "int | None", [("64", 64), (None, None), ("none", None), ("None", None), ("", None)]),
    ("lr", "float", [("0.1", 0.1), (1, 1.0), ("1e-2", 0.01)]),
    ("ema", "float | None", [("0.9", 0.9), (None, None), ("none", None), (0, None), ("0", None)]),
    ("checkpoint", "bool", [("yes", True), ("On", True), ("1", True), ("off", False), ("FALSE", False), (True, True),
                            (0, False)]),
    ("init", "str", [("noise", "noise"), ("gaussian", "gaussian"), ("photo.png", "photo.png")]),
    ("optimizer", "Literal", [("lbfgs", "lbfgs"), ("adam", "adam")]),
    ("preset", "str | None", [(None, None), ("preview", "preview")]),
    ("content_layers", "tuple[str, ...]", [("relu4_2", ("relu4_2",)), ("relu3_1, relu4_2", ("relu3_1", "relu4_2")),
                                           (["relu4_2", 21], ("relu4_2", "conv4_2")), ("RELU4_2,", ("relu4_2",))]),
    ("style_layers", "(layer, weight) pairs", [
        ("relu1_1:1,relu2_1:0.75", (("relu1_1", 1.0), ("relu2_1", 0.75))),
        (["relu1_1", "relu2_1"], (("relu1_1", 1.0), ("relu2_1", 1.0))),
        ({"relu1_1": 2, "relu3_1": "0.5"}, (("relu1_1", 2.0), ("relu3_1", 0.5))),
        ([("relu1_1", 1.0), ["relu2_1", 3]], (("relu1_1", 1.0), ("relu2_1", 3.0))),
    ]),
    ("shape", "tuple[int, int] | None", [("300x400", (300, 400)), ("300X400", (300, 400)), ("300,400", (300, 400)),
                                         ([300, 400], (300, 400)), (("300", 400.0), (300, 400)), ("none", None),
                                         (None, None)]),
    ("scale_steps", "tuple[int, ...] | None", [("200,100,50", (200, 100, 50)), ("200, 100", (200, 100)),
                                               ("200 100", (200, 100)), ([200, 100], (200, 100)), ("none", None)]),
    ("style_blend", "tuple[float, ...] | None", [("0.2,0.8", (0.2, 0.8)), (" 0.2 0.8 ", (0.2, 0.8)),
                                                 ([1, 3], (1.0, 3.0)), ((0.5,), (0.5,)), ("", None)]),
    ("keep_mask", "ImagePath | None", [("face.png", "face.png"), ("none", None), (None, None)]),
    ("background", "Spec | None", [("white", "white"), ("#f4efe6", "#f4efe6"), ("none", None), (None, None)]),
    ("masks", "tuple[ImagePath, ...] | None", [("sky.png,bridge.png", ("sky.png", "bridge.png")),
                                               (["sky.png", "b.png"], ("sky.png", "b.png")), ("none", None)]),
]

REJECTED = [
    ("size", "2.5", ["size = '2.5'", "whole number"]),
    ("size", True, ["size = True", "whole number"]),
    ("start_size", "big", ["start_size = 'big'", "whole number"]),
    ("lr", "fast", ["lr = 'fast'", "expected a number"]),
    ("ema", [0.9], ["ema = [0.9]", "expected a number"]),
    ("checkpoint", "maybe", ["checkpoint = 'maybe'", "true or false"]),
    ("init", "", ["init = ''", "gaussian"]),
    ("optimizer", "sgd", ["optimizer = 'sgd'", "choose one of adam, lbfgs"]),
    ("pooling", "mean", ["pooling = 'mean'", "choose one of max, avg"]),
    ("content_layers", 4.5, ["content_layers = 4.5", "layer names"]),
    ("content_layers", "relu9_9", ["content_layers", "'relu9_9'", "valid layers"]),
    ("style_layers", [("relu1_1", 1, 2)], ["style_layers", "(layer, weight) pairs"]),
    ("style_layers", "relu1_1:x", ["style_layers = 'x'", "expected a number"]),
    ("style_layers", 5, ["style_layers = 5", "a list of layer names or a table"]),
    ("shape", "300x", ["shape = '300x'", "HEIGHTxWIDTH"]),
    ("shape", [300.5, 400], ["shape = [300.5, 400]", "whole pixels"]),
    ("scale_steps", "200,2.5", ["scale_steps = '2.5'", "whole number"]),
    ("scale_steps", 5, ["scale_steps = 5", "whole numbers"]),
    ("style_blend", "0.2;0.8", ["style_blend = '0.2;0.8'", "number"]),
    ("style_blend", {"a": 1}, ["style_blend = {'a': 1}", "numbers"]),
]


@pytest.mark.parametrize(("key", "kind", "cases"), ACCEPTED, ids=[f"{a[0]}: {a[1]}" for a in ACCEPTED])
def test_each_annotation_kind_accepts_its_forms(key, kind, cases):
    for given, want in cases:
        assert getattr(StyleConfig(**{key: given}), key) == want, (key, given)
        assert getattr(from_dict({key: given}), key) == want, (key, given)


@pytest.mark.parametrize(("key", "value", "words"), REJECTED, ids=[f"{r[0]}={r[1]!r}" for r in REJECTED])
def test_a_bad_value_is_a_one_line_config_error_with_its_key(key, value, words):
    with pytest.raises(ConfigError) as e:
        from_dict({key: value})
    msg = str(e.value)
    assert e.value.key == key and "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_every_field_has_a_coercer_and_the_choices_come_from_the_annotations():
    hints = get_type_hints(StyleConfig)
    assert set(config._COERCE) == set(FIELD_NAMES)
    literals = {k: get_args(h) for k, h in hints.items() if get_origin(h) is Literal}
    assert config._CHOICES == literals and literals["loss_norm"] == ("relative", "classic", "jcjohnson")
    with pytest.raises(TypeError, match="no coercion for"):
        coercion.coercer("colour", complex)


def test_every_annotation_kind_is_covered_above():
    hints = get_type_hints(StyleConfig)
    kinds = {Literal if get_origin(h) is Literal else h for h in hints.values()}
    assert kinds == set(coercion.COERCERS) | {Literal}  # no coercer is unused
    covered = {Literal if get_origin(hints[k]) is Literal else hints[k] for k, _, _ in ACCEPTED}
    assert covered == kinds  # a new annotation needs a coercer and a row in ACCEPTED


def test_canonical_values_round_trip():
    cfg = from_dict({"shape": "48x64", "scale_steps": "4 2", "style_blend": "1,3", "style_layers": {"relu1_1": 2},
                     "content_layers": "21", "ema": 0.5, "checkpoint": "yes", "preset": "preview"})
    assert from_dict(cfg.to_dict()) == cfg and StyleConfig(**cfg.to_dict()) == cfg


@pytest.mark.parametrize(("data", "key"), [
    ({"style_weight": -1}, "style_weight"),
    ({"size": 8}, "size"),
    ({"tile_size": 100}, "tile_size"),
    ({"style_layers": "relu1_1,relu1_1"}, "style_layers"),
    ({"content_layers": [], "content_weight": 1}, "content_layers"),
    ({"style_blend": "0,0"}, "style_blend"),
    ({"preset": "fast"}, "preset"),
    ({"style_wieght": 3}, "style_wieght"),
    ({"precision": "fp64"}, "precision"),
])
def test_config_error_names_its_key(data, key):
    with pytest.raises(ConfigError) as e:
        from_dict(data)
    assert e.value.key == key
    with pytest.raises(ConfigError) as e2:  # replace() raises the same way
        StyleConfig().replace(**data)
    assert e2.value.key == key


def test_config_error_key_survives_pickling():
    err = pickle.loads(pickle.dumps(ConfigError("lr = 0.0 is invalid: must be > 0", key="lr")))
    assert isinstance(err, ConfigError) and isinstance(err, ValueError)
    assert err.key == "lr" and str(err) == "lr = 0.0 is invalid: must be > 0"
    assert ConfigError("no key").key is None


@pytest.mark.parametrize("norm", ["classic", "jcjohnson"])
def test_wasserstein_refuses_a_loss_norm_it_would_ignore(norm):
    with pytest.raises(ConfigError) as e:
        StyleConfig(style_loss="wasserstein", loss_norm=norm)
    msg = str(e.value)
    assert e.value.key == "style_loss" and "\n" not in msg
    for w in ("style_loss = 'wasserstein'", f"loss_norm = {norm!r}", "set loss_norm = 'relative'"):
        assert w in msg, msg
    with pytest.raises(ConfigError, match="wasserstein"):
        preset("gatys-adam", style_loss="wasserstein")
    assert StyleConfig(style_loss="wasserstein").loss_norm == "relative"
    assert preset("gatys-adam", style_loss="wasserstein", loss_norm="relative").style_loss == "wasserstein"


def test_gaussian_init_is_accepted_and_the_lbfgs_preset_uses_it():
    assert StyleConfig(init="gaussian").init == "gaussian"
    assert preset("gatys-lbfgs").init == "gaussian" and PRESETS["gatys-lbfgs"]["init"] == "gaussian"
    assert "gaussian" in config.field_docs()["init"] and "σ = 0.001" in config.field_docs()["init"]


@pytest.mark.parametrize(("text", "line", "key"), [
    ("size = 32\n\nstyle_wieght = 3\nstyle_weight = 2\n", 3, "style_wieght"),  # the unknown key's line, not its match's
    ("size = 32\nlr = -2\n", 2, "lr"),
    ('size = 32\n# style_loss = "gram"\nloss_norm = "classic"\nstyle_loss = "wasserstein"\n', 4, "style_loss"),
    ('preset = "fast"\n', 1, "preset"),
])
def test_toml_errors_name_the_line_of_their_key(tmp_path, text, line, key):
    path = tmp_path / "cfg.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        from_toml(path)
    assert str(e.value).startswith(f"{path}:{line}: ") and e.value.key == key


def test_toml_error_without_a_line_names_the_file(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('preset = "gatys-adam"\nstyle_loss = "wasserstein"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        from_toml(path)
    assert str(e.value).startswith(f"{path}:2: style_loss = 'wasserstein'")
    path.write_text("[style_layers]\nrelu9_1 = 1\n", encoding="utf-8")  # a table: key_line finds no "key =" line
    with pytest.raises(ConfigError) as e:
        from_toml(path)
    assert str(e.value).startswith(f"{path}: style_layers: unknown layer 'relu9_1'") and e.value.key == "style_layers"
