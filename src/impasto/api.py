"""The one seam between front ends (CLI, web, sweeps, video, notebooks) and io/core.

``stylize(content, styles, config=..., callback=...) -> Result``; ``stylize_batch`` runs several configs on the
same inputs together (what sweeps use). Front ends import what they need of the engine from here, never from
``impasto.core``: the names re-exported below are that contract.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from . import arguments
from .config import StyleConfig, from_dict
from .core import state as run_states
from .core.events import FINAL, STATUSES, Status, Step, StopToken
from .core.optimize import initial_state, optimize, plan
from .core.optimize import total_steps as _total_steps
from .core.schedule import fit_long_side
from .core.state import RunState
from .core.targets import StyleTargets
from .core.vgg import LAYER_NAMES
from .errors import ConfigError, ResourceError, WriteError
from .forecast import Forecast, forecast, line
from .frames import FrameOutcome, FrameRunner  # impasto.video's engine: one runner a clip, a run a frame
from .inputs import ImageLike, Prepared, fingerprint, finish, postprocess, prepare, style_list, style_transform
from .io.checkpoint import check_position, load_checkpoint, save_checkpoint
from .io.files import SAVE_FORMATS, check_not_input, check_output
from .io.images import LoadedImage
from .io.recipe import save_image
from .io.streams import SafeStream
from .machine import Report
from .machine import report as machine_report
from .masks import MASK_FIELDS, split_overrides
from .meter import Distances, Meter, measure
from .outputs import check_format
from .preflight import check_memory, check_sizes, pick_tiles
from .progress import RunProgress, announce
from .reblend import blend_file, blend_images
from .result import (
    HISTORY_COLUMNS,
    LOSS_CONVENTIONS,
    LOSS_DESCRIPTIONS,
    TERMS,
    Result,
    describe_convention,
    recipe,
    render,
    save_picture,
    write_history,
    write_run,
)
from .runtime import resolve_device, resolve_precision
from .weights import load_vgg

__all__ = [
    "BATCH_SHARED", "FINAL", "HISTORY_COLUMNS", "FrameOutcome", "FrameRunner", "LAYER_NAMES", "LOSS_CONVENTIONS", "LOSS_DESCRIPTIONS", "STATUSES", "TERMS", "ImageLike",
    "Distances", "Forecast", "LoadedImage", "Meter", "Prepared", "Report", "Result", "RunState", "Status", "Step", "StopToken", "batch_key",
    "blend_file", "blend_images", "check_memory", "describe_convention", "estimate_run", "fingerprint", "machine_report", "fit_long_side",
    "layer_shapes", "measure", "resolve_config",
    "resolve_device",
    "resolve_precision",
    "resume_state", "run_states", "save_picture", "save_run_checkpoint", "schedule", "stylize", "stylize_batch", "total_steps",
    "write_history",
]

# Fields every run of a batch must share (the others — weights, layers, blend, lr, β₂, seed, init, ema — may differ):
# the engine's (core/settings.ENGINE_SHARED) and what decides the inputs' tensors and the network.
BATCH_SHARED = (
    "size", "size_side", "shape", "start_size", "scale_factor", "steps", "first_steps", "scale_steps", "optimizer",
    "weights", "pooling", "padding", "loss_norm", "style_loss", "neighbour_refresh", "neighbour_rotations", "param", "tol",
    "preserve_color", "style_scale", "style_fit",
    "device", "tile_size", "checkpoint", "precision", "style_masks", "mask_rule", "print_size",
)


def batch_key(cfg: StyleConfig) -> tuple:
    """Configs with equal keys can run as one batch (L-BFGS couples its variables: every L-BFGS run is alone)."""
    key = tuple((name, repr(getattr(cfg, name))) for name in BATCH_SHARED)
    return key + ((("solo", id(cfg)),) if cfg.optimizer == "lbfgs" else ())


def total_steps(cfg: StyleConfig, final: tuple[int, int]) -> int:
    """Steps of the whole schedule for a result of ``final`` (h, w) pixels."""
    return _total_steps(cfg, final)


def schedule(cfg: StyleConfig, final: tuple[int, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """The coarse-to-fine schedule for a result of ``final`` (h, w) pixels: every scale's (h, w) and its steps."""
    return plan(cfg, final)


def layer_shapes(height: int, width: int) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) of every VGG19 layer for an image of height × width (no weights are loaded)."""
    from .core.preprocess import CaffePreprocess
    from .core.vgg import VGG19

    return VGG19(CaffePreprocess()).shapes(height, width)


def estimate_run(content: ImageLike, styles: Sequence[ImageLike] | ImageLike,
                 config: StyleConfig | dict[str, Any] | None = None, *, runs: int = 1, measure: bool = True,
                 **overrides: Any) -> tuple[Forecast, str]:
    """What a run of ``config`` on these inputs will take here, before it starts: (the Forecast, its one-line
    text). ``measure``: calibrate this machine now if it never was (a few seconds, once)."""
    from .inputs import final_size
    from .io.images import load_image

    cfg = resolve_config(config, overrides)
    device = resolve_device(cfg.device)
    image = load_image(content, max_pixels=cfg.max_pixels, name="content image").image
    final = final_size(image, cfg)
    from .core.targets import style_size

    styles_hw = []
    for s in style_list(styles):
        im = load_image(s, max_pixels=cfg.max_pixels, name="style image").image
        styles_hw.append(style_size((im.height, im.width), final, cfg.style_scale, cfg.style_fit, cfg.size_side,
                                    least=8))
    fc = forecast([cfg] * runs, final, styles_hw, device, resolve_precision(cfg.precision, device), measure=measure)
    return fc, line(fc, cfg, final, styles_hw, runs)


def resolve_config(config: StyleConfig | dict[str, Any] | None, overrides: dict[str, Any]) -> StyleConfig:
    if config is None:
        config = StyleConfig()
    elif isinstance(config, dict):
        config = from_dict(config)
    elif not isinstance(config, StyleConfig):
        hint = f" (for a preset: preset={config!r})" if isinstance(config, str) else ""
        raise ConfigError(f"config must be a StyleConfig or a dict, not {type(config).__name__}{hint}", key="config")
    return config.replace(**overrides) if overrides else config


class _RunStop(StopToken):
    """The caller's stop token, or a write that failed during the run (a snapshot on a full disk): either ends the
    run after its step, as a Ctrl-C does, so that its checkpoint and image are still tried."""

    def __init__(self, outer: StopToken | None) -> None:
        super().__init__()
        self.outer, self.error = outer, None

    def fail(self, error: WriteError) -> None:
        self.error = self.error or error
        self.stop(f"stopped: {error}")

    @property
    def stopped(self) -> bool:
        return self._event.is_set() or (self.outer is not None and self.outer.stopped)

    @property
    def reason(self) -> str:
        return self._local_reason if self._event.is_set() or self.outer is None else self.outer.reason


def _observer(cfgs: Sequence[StyleConfig], prepared: Prepared, state: RunState, checked: Sequence[Path | None],
              snapshots: list[list[tuple[int, Image.Image]]], progress: RunProgress,
              callback: Callable[[Step], None] | None, halt: _RunStop) -> Callable[[Step], None]:
    """The engine's Step → the ETA and bar (impasto.progress), ``save_every`` snapshots and the user's callback
    (with the ETA and a PIL renderer)."""

    def on_step(step: Step) -> None:
        cfg = cfgs[step.index]

        def as_pil(i: int = step.index) -> Image.Image:
            return render(finish(cfg, postprocess(cfg, state.images[i].detach().clone(), prepared.content_rgb,
                                                  _keep(prepared, i), prepared.palette), prepared.alpha))

        eta = progress.update(step)
        if cfg.save_every and step.step % cfg.save_every == 0:
            out = checked[step.index]
            if out is not None:
                snap = out.with_name(f"{out.stem}.step{step.step:05d}{out.suffix}")
                try:
                    save_image(as_pil(), snap, {"step": step.step, "config": cfg.to_dict()})
                except WriteError as e:  # a full disk: stop here and try to keep the run (checkpoint first)
                    halt.fail(e)
            else:
                snapshots[step.index].append((step.step, as_pil()))
        if callback is not None:
            callback(dataclasses.replace(step, eta=eta, render=as_pil))

    return on_step


def _keep(prepared: Prepared, i: int) -> torch.Tensor | None:
    return prepared.keeps[i] if prepared.keeps else None


def _run(cfgs: Sequence[StyleConfig], prepared: Prepared, state: RunState, device: torch.device,
         on_step: Callable[[Step], None], stop: StopToken | None) -> RunState:
    c0 = cfgs[0]
    size = tuple(prepared.content.shape[-2:])
    model = load_vgg(c0.weights, c0.pooling, str(device), c0.padding)
    styles: Sequence[torch.Tensor] | StyleTargets = prepared.styles
    if prepared.style_guides is not None:  # style masks: each style's statistics over its own part
        styles = StyleTargets(prepared.styles, c0.style_scale, guides=prepared.style_guides,
                              transform=style_transform(c0), rule=c0.mask_rule, fit=c0.style_fit, side=c0.size_side)
    try:
        return optimize(model, prepared.content, styles, cfgs, state=state, callback=on_step, stop=stop,
                        style_transform=style_transform(c0), guides=prepared.guides,
                        precision=resolve_precision(c0.precision, device))
    except (torch.cuda.OutOfMemoryError, MemoryError, RuntimeError) as e:
        # The estimate is checked first; this catches what it missed (other processes, fragmentation).
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, RuntimeError) and not isinstance(e, torch.cuda.OutOfMemoryError) and not any(
                k in text.lower() for k in ("out of memory", "can't allocate memory", "cannot allocate memory")):
            raise
        raise ResourceError(f"ran out of {device.type} memory at {size[1]}x{size[0]} ({text[:120]}); "
                            "use a smaller --size or fewer/shallower style layers"
                            + (" or --device cpu" if device.type != "cpu" else "")) from None


def stylize_batch(
    content: ImageLike,
    styles: Sequence[ImageLike] | ImageLike,
    configs: Sequence[StyleConfig],
    *,
    callback: Callable[[Step], None] | None = None,
    stop: StopToken | None = None,
    state: RunState | None = None,
    progress: bool = False,
    outputs: Sequence[str | os.PathLike[str] | None] | None = None,
    force: bool = True,
    checkpoints: Sequence[str | os.PathLike[str] | None] | None = None,
    masks: dict[str, Any] | None = None,
) -> list[Result]:
    """Run several configs that share a size and schedule (see ``batch_key``) as one batch.

    With ``outputs``, each result is saved there (image, recipe, ``.losses.csv``); ``save_every`` snapshots are
    written beside it as ``NAME.stepNNNNN.png``. Outputs are checked before the run starts. A stopped run writes
    its checkpoint to ``checkpoints[i]`` (if given) before its image. A file that cannot be written (a full disk) is
    a ``WriteError``; a snapshot that cannot be written stops the run first, so that its checkpoint is tried.
    ``masks``: mask images in memory for every run ({"masks": [...], "keep_mask": ...}; see the docs: how-to/masks).
    """
    styles = arguments.check_run(content, styles, callback=callback, stop=stop, state=state, progress=progress,
                                 force=force)  # at the door: one line naming a wrong argument, before any work
    cfgs = arguments.check_configs(configs)
    if not cfgs:
        return []
    if len({batch_key(c) for c in cfgs}) > 1:
        raise ConfigError("these configs cannot share a batch (size, schedule, optimiser, ... differ); run them apart")
    c0 = cfgs[0]
    outs = arguments.check_outputs(outputs, len(cfgs))
    arguments.check_outputs(checkpoints, len(cfgs), key="checkpoints")
    checked = [check_output(o, force=force) if o is not None else None for o in outs]
    inputs = {"content image": content, **{f"style image {i + 1}": s for i, s in enumerate(style_list(styles))},
              **{f"init image {c.init}": c.init for c in cfgs if c.init not in ("content", "noise", "gaussian")},
              **{f"{k} {p}": p for c in cfgs for k in MASK_FIELDS for p in _paths(getattr(c, k))}}
    for o in checked:
        if o is not None:
            check_not_input(o, inputs)
    device = resolve_device(c0.device)
    prepared = prepare(content, styles, cfgs, device, masks)
    for c, o in zip(cfgs, checked):
        if o is not None:
            check_format(o, SAVE_FORMATS[o.suffix.lower()], bit_depth=c.bit_depth, source=prepared.names["content"],
                         transparent=prepared.alpha is not None and c.background is None)
    size: tuple[int, int] = tuple(prepared.content.shape[-2:])  # type: ignore[assignment]
    cfgs, tiles = pick_tiles(cfgs, size, device)
    if tiles:  # a print's size decides the tiles: said before the run; a choice of tiles is kept in the recipe
        if progress:
            print(f"impasto: {tiles}", file=SafeStream(sys.stderr))
        if cfgs[0].tile_size:
            prepared.notes.append(tiles)
    check_sizes(cfgs, prepared.content, prepared.styles, prepared.names)
    check_memory(cfgs, size, device, [tuple(s.shape[-2:]) for s in prepared.styles])  # type: ignore[misc]
    state = state if state is not None else initial_state(prepared.content, cfgs, prepared.inits)
    precision = resolve_precision(c0.precision, device)
    styles_hw = [tuple(s.shape[-2:]) for s in prepared.styles]
    fc = forecast(cfgs, size, styles_hw, device, precision, measure=progress)  # type: ignore[arg-type]
    if progress:  # the first line a run prints: what it will take here
        announce(line(fc, c0, size, styles_hw, len(cfgs)))  # type: ignore[arg-type]
    tracker = RunProgress(*plan(c0, size), len(cfgs), bar=progress, step_seconds=fc.estimate.step_seconds,
                          setup=fc.estimate.setup_seconds, calibrated=fc.calibration is not None)
    snapshots: list[list[tuple[int, Image.Image]]] = [[] for _ in cfgs]
    halt = _RunStop(stop)
    t0 = time.perf_counter()
    try:
        state = _run(cfgs, prepared, state, device,
                     _observer(cfgs, prepared, state, checked, snapshots, tracker, callback, halt), halt)
    finally:
        tracker.close()
    elapsed = time.perf_counter() - t0
    results = []
    for i, cfg in enumerate(cfgs):
        pixels = finish(cfg, postprocess(cfg, state.images[i], prepared.content_rgb, _keep(prepared, i),
                                         prepared.palette), prepared.alpha).detach().float().cpu()
        results.append(Result(image=render(pixels), config=cfg, history=state.history[i], status=state.item_status(i),
                              message=state.item_message(i), elapsed=elapsed,
                              recipe=recipe(cfg, device, prepared, state, i, elapsed), state=state,
                              snapshots=snapshots[i], pixels=pixels))
    ckpts = [Path(c) if c is not None else None for c in (checkpoints or [None] * len(cfgs))]
    for i, out in enumerate(checked):
        if out is not None:
            write_run(results[i], out, ckpts[i], i)
    if halt.error is not None:
        raise WriteError(f"{halt.error}; the run stopped after that step, and its image"
                         + (" and checkpoint were" if any(ckpts) else " was") + " saved") from None
    return results


def stylize(
    content: ImageLike,
    styles: Sequence[ImageLike] | ImageLike,
    config: StyleConfig | dict[str, Any] | None = None,
    *,
    callback: Callable[[Step], None] | None = None,
    stop: StopToken | None = None,
    state: RunState | None = None,
    progress: bool = True,
    output: str | os.PathLike[str] | None = None,
    force: bool = True,
    checkpoint: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Result:
    """Paint ``content`` in the manner of ``styles``.

    ``content`` and each style may be a path, an http(s) URL, a PIL image or a (3, H, W) tensor in [0, 1].
    ``config`` is a StyleConfig (or dict); keyword overrides change single fields: ``stylize(c, s, steps=50)``.
    ``callback(step)`` is called after every step with its losses and ``step.eta`` (the seconds left, estimated per
    scale); ``step.image()`` makes the current PIL image.
    ``stop`` ends the run after the current step (``result.status == "cancelled"``); ``state`` continues a run.
    ``output`` saves the result (PNG with its recipe, or JPEG) and its ``.losses.csv``; a stopped run writes its
    ``checkpoint`` (if given: what ``resume_state`` reads) before them, so that a full disk still leaves it resumable.
    Masks (docs/how-to/masks.md): ``masks=[sky, bridge]`` (one per style), ``mask_colors=``, ``keep_mask=``,
    ``style_masks=``: paths or URLs (settings, kept in the recipe) or images (PIL, tensors, bytes).
    """
    overrides, mask_images = split_overrides(overrides)
    arguments.check_output(output)
    arguments.check_output(checkpoint, "checkpoint")
    cfg = resolve_config(config, overrides)
    return stylize_batch(content, styles, [cfg], callback=callback, stop=stop, state=state, progress=progress,
                         outputs=[output], force=force, checkpoints=[checkpoint], masks=mask_images)[0]


def _paths(value: Any) -> list[str]:
    """A mask setting's paths (for the check that no output overwrites an input)."""
    items = value if isinstance(value, (list, tuple)) else [value]
    return [p for p in items if isinstance(p, str) and p != "none"]


def save_run_checkpoint(path: str | Path, result: Result) -> Path:
    """Write what ``resume_state`` needs to continue ``result``'s run."""
    assert result.state is not None
    fp = result.recipe["inputs_fingerprint"]
    return save_checkpoint(path, result.state.to_dict(), result.config.to_dict(), fp)


def _move_state(st: dict[str, Any], device: torch.device) -> dict[str, Any]:
    move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v
    st["images"] = [move(t) for t in st["images"]]
    st["params"] = [move(t) for t in st["params"]] if st.get("params") is not None else None
    st["ema"] = [move(t) for t in st["ema"]] if st.get("ema") is not None else None
    if st.get("opt_state") is not None:
        for s in st["opt_state"]["state"].values():
            for k, v in s.items():
                s[k] = move(v) if k != "step" else v
    return st


def resume_state(path: str | Path, config: StyleConfig, content: ImageLike, styles: Sequence[ImageLike]) -> RunState:
    """Load a checkpoint and check that it belongs to this config and these inputs."""
    data = load_checkpoint(path)
    try:
        saved = from_dict(data["config"])
    except ConfigError as e:  # written by another version of impasto
        raise ConfigError(f"{path}: its settings do not load here ({e}); delete it and start afresh") from None
    # These do not change what the run computes (a print's tiles were picked for it: they are picked again).
    tiles = config.tile_size if config.print_size is not None and not config.tile_size else saved.tile_size
    saved = saved.replace(save_every=config.save_every, max_pixels=config.max_pixels, bit_depth=config.bit_depth,
                          background=config.background, tile_size=tiles)
    if saved.key() != config.key():
        a, b = saved.to_dict(), config.to_dict()
        diff = ", ".join(f"{k} {a[k]!r} (now {b[k]!r})" for k in a if k != "device" and a[k] != b.get(k))
        raise ConfigError(f"{path}: was written with other settings: {diff}; "
                          "use the same settings to resume, or delete the checkpoint")
    device = resolve_device(config.device)
    prepared = prepare(content, style_list(styles), [config], device)
    if prepared.fingerprint != data["fingerprint"]:
        raise ConfigError(f"{path}: was written for other input images; use the same images to resume")
    check_position(path, data["state"], *plan(config, tuple(prepared.content.shape[-2:])),
                   adam=config.optimizer != "lbfgs")  # type: ignore[arg-type]
    return RunState.from_dict(_move_state(data["state"], device))
