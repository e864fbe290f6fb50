"""The public API's arguments checked at the door: ``stylize``, ``stylize_batch`` and ``sweep`` call these first.

A wrong argument (``stop=True``, ``output=5``, ``callback="x"``, a dict of styles, a closed PIL image) is a one-line
ConfigError (or ImageError, for images) that names the argument and what it takes, before anything is loaded or
written, never a TypeError or AttributeError from deep inside the run. Styles may come as any iterable (a generator
is read once, here). Config fields are checked by StyleConfig itself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from PIL import Image

from .coercion import shown
from .config import StyleConfig, from_dict
from .core.events import StopToken
from .core.state import RunState
from .errors import ConfigError, ImageError
from .io.images import LoadedImage

IMAGE_TYPES = (str, os.PathLike, Image.Image, torch.Tensor, bytes, bytearray, memoryview, LoadedImage)
_IMAGE_HELP = "a path, an http(s) URL, a PIL image, a (3, H, W) tensor or bytes"


def check_image(value: Any, what: str) -> Any:
    """One image argument: of a type ``load_image`` takes, and readable if it is a PIL image."""
    if not isinstance(value, IMAGE_TYPES):
        kind = "a list" if isinstance(value, (list, tuple)) else f"a {type(value).__name__}"
        raise ImageError(f"{what}: {kind} is not an image; give {_IMAGE_HELP}")
    if isinstance(value, Image.Image):
        try:
            value.im  # noqa: B018 -- raises for a closed image (Image.close(), or after its `with` block)
        except ValueError:
            raise ImageError(f"{what}: the PIL image is closed; pass it before closing it, or pass im.copy()") from None
    if isinstance(value, str) and not value.strip():
        raise ImageError(f"{what}: an empty string is not a path; give {_IMAGE_HELP}")
    return value


def check_styles(value: Any, what: str = "styles") -> list[Any]:
    """One style image or an iterable of them (a list, a tuple, a generator: read once, here) → a checked list."""
    if isinstance(value, IMAGE_TYPES):
        return [check_image(value, "style image")]
    if value is None:
        raise ConfigError(f"{what}: give at least one style image", key="styles")
    if isinstance(value, Mapping):
        raise ConfigError(f"{what}: a {type(value).__name__} of style images is ambiguous; give a list "
                          "(list(d.values()))", key="styles")
    if not isinstance(value, Iterable):
        raise ImageError(f"{what}: a {type(value).__name__} is not an image; give {_IMAGE_HELP}, or a list of them")
    items = list(value)
    if not items:
        raise ConfigError(f"{what}: give at least one style image", key="styles")
    return [check_image(s, f"style image {i + 1}") for i, s in enumerate(items)]


def check_callback(value: Any, key: str = "callback") -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"{key} = {shown(value)} is invalid: give a function that takes one step event, or None",
                          key=key)


def check_stop(value: Any) -> None:
    if value is not None and not isinstance(value, StopToken):
        raise ConfigError(f"stop = {shown(value)} is invalid: give an impasto.StopToken (stop = impasto.StopToken(); "
                          "stop.stop() ends the run after its current step), or None", key="stop")


def check_flag(value: Any, key: str) -> bool:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise ConfigError(f"{key} = {shown(value)} is invalid: give True or False", key=key)


def check_output(value: Any, key: str = "output") -> None:
    """An output path: None, a str or an os.PathLike (what the file checks then look at)."""
    if value is None:
        return
    if not isinstance(value, (str, os.PathLike)):
        hint = " (activation checkpointing is the config's checkpoint: config={'checkpoint': True})" if (
            isinstance(value, bool) and key.startswith("checkpoint")) else ""
        raise ConfigError(f"{key} = {shown(value)} is invalid: give a file path (str or pathlib.Path), or None{hint}",
                          key=key)
    if not os.fspath(value):
        raise ConfigError(f"{key} = '' is invalid: give a file path, or None for no file", key=key)


def check_state(value: Any) -> None:
    if value is not None and not isinstance(value, RunState):
        raise ConfigError(f"state = {shown(value)} is invalid: give a RunState (result.state, or "
                          "impasto.api.resume_state(...)), or None", key="state")


def check_run(content: Any, styles: Any, *, callback: Any, stop: Any, state: Any, progress: Any,
              force: Any) -> list[Any]:
    """What ``stylize`` and ``stylize_batch`` share: the images (styles as a list), the hooks and the flags."""
    check_image(content, "content image")
    checked = check_styles(styles)
    check_callback(callback)
    check_stop(stop)
    check_state(state)
    check_flag(progress, "progress")
    check_flag(force, "force")
    return checked


def check_configs(value: Any) -> list[StyleConfig]:
    """``stylize_batch``'s configs: an iterable of StyleConfig (or dicts of its fields)."""
    if isinstance(value, (StyleConfig, Mapping)):
        raise ConfigError("configs must be a list of configs, one per result; for one, use impasto.stylize or "
                          "[config]", key="configs")
    if not isinstance(value, Iterable) or isinstance(value, (str, bytes)):
        raise ConfigError(f"configs = {shown(value)} is invalid: give a list of StyleConfig", key="configs")
    out = []
    for i, c in enumerate(value):
        if isinstance(c, Mapping):
            c = from_dict(c)
        if not isinstance(c, StyleConfig):
            raise ConfigError(f"configs[{i}] = {shown(c)} is invalid: give a StyleConfig (or a dict of its fields)",
                              key="configs")
        out.append(c)
    return out


def check_outputs(value: Any, n: int, key: str = "outputs") -> list[Any]:
    """``stylize_batch``'s outputs (or checkpoints): None, or one path (or None) per config."""
    if value is None:
        return [None] * n
    if isinstance(value, (str, os.PathLike)) or not isinstance(value, Sequence):
        raise ConfigError(f"{key} = {shown(value)} is invalid: give a list with one path (or None) per config",
                          key=key)
    if len(value) != n:
        raise ConfigError(f"{key} has {len(value)} paths for {n} configs; give one path (or None) per config",
                          key=key)
    for o in value:
        check_output(o, key)
    return list(value)


def check_sweep(experiment: Any, *, content: Any, styles: Any, output: Any, force: Any, executor: Any,
                max_batch: Any, callback: Any, stop: Any, progress: Any, refresh: Any, plots: Any) -> list[Any] | None:
    """``impasto.sweep``'s arguments; returns the styles as a list (None: the experiment file's)."""
    from .experiments.spec import Experiment  # a front end's type: imported only when a sweep is checked

    if not isinstance(experiment, (str, os.PathLike, Experiment)):
        raise ConfigError(f"experiment = {shown(experiment)} is invalid: give the path of an experiment TOML file or "
                          "an Experiment (impasto.experiments.load_experiment)", key="experiment")
    if content is not None:
        check_image(content, "content image")
    checked = check_styles(styles) if styles is not None else None
    check_output(output)
    check_flag(force, "force")
    check_flag(progress, "progress")
    check_flag(plots, "plots")
    check_callback(callback)
    check_stop(stop)
    if executor is not None and not callable(getattr(executor, "run", None)):
        raise ConfigError(f"executor = {shown(executor)} is invalid: give an object with a run(batches, *, on_step, "
                          "stop) method (impasto.experiments.Executor), or None", key="executor")
    if max_batch is not None and (isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1):
        raise ConfigError(f"max_batch = {shown(max_batch)} is invalid: give a whole number, 1 or more (1 runs the "
                          "variants one by one), or None", key="max_batch")
    if refresh is not None and (isinstance(refresh, bool) or not isinstance(refresh, (int, float))
                                or not math.isfinite(refresh) or refresh < 0):
        raise ConfigError(f"refresh = {shown(refresh)} is invalid: give seconds, 0 or more (0 or None: redraw only "
                          "after each batch)", key="refresh")
    return checked

