"""The one seam between front ends (CLI, web, sweeps, notebooks) and io/core.

``stylize(content, styles, config=..., callback=...) -> Result``; ``stylize_batch`` runs several configs on the
same inputs together (what sweeps use).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from . import __version__
from .config import StyleConfig, from_dict
from .core import colour
from .core.events import FINAL, STATUSES, Status, Step, StopToken  # noqa: F401  (the status vocabulary, re-exported)
from .core.memory import WEIGHT_BYTES, estimate_bytes
from .core.optimize import RunState, batch_key, optimize, total_steps
from .core.schedule import fit_long_side, scale_sizes
from .core.vgg import LAYER_NAMES
from .errors import ConfigError, ImageError, ResourceError
from .io.checkpoint import load_checkpoint, save_checkpoint
from .io.images import (
    LoadedImage,
    atomic_write,
    check_not_input,
    check_output,
    load_image,
    pil_to_tensor,
    resize_exact,
    resize_long,
    save_image,
    tensor_to_pil,
)
from .weights import load_vgg

LOSS_CONVENTIONS = {
    "relative": "G=FF^T/(HW); style_l=|G-G*|^2/|G*|^2, layer weights normalised to sum 1; "
                "content=mean over layers of |F-F*|^2/|F*|^2; tv=mean squared neighbour difference on [0,1] pixels",
    "classic": "G=FF^T; style=sum_l w_l*mean((G-G*)^2)/(C*H*W); content=mean((F-F*)^2) (the PyTorch exercise)",
    "jcjohnson": "G=FF^T/(C*H*W); style=sum_l w_l*mean((G-G*)^2); content=sum over layers of mean((F-F*)^2); "
                 "tv=sum of squared differences on 0-255 pixels (neural-style)",
}

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | torch.Tensor | bytes


@dataclass
class Result:
    """A finished (or stopped) run. In a notebook it displays as its image."""

    image: Image.Image
    config: StyleConfig
    history: list[dict[str, float]]
    status: str  # done | cancelled | diverged
    message: str
    elapsed: float
    recipe: dict[str, Any]
    state: RunState | None = field(default=None, repr=False)
    snapshots: list[tuple[int, Image.Image]] = field(default_factory=list, repr=False)

    @property
    def losses(self) -> dict[str, float]:
        """The last step's loss terms."""
        return {k: v for k, v in self.history[-1].items() if k not in ("step", "scale", "time")} if self.history else {}

    def save(self, path: str | os.PathLike[str], *, force: bool = True) -> Path:
        """Save the image (PNG with its recipe, or JPEG) and the loss history beside it (``.losses.csv``)."""
        p = check_output(path, force=force)
        save_image(self.image, p, self.recipe)
        write_history(p.with_suffix(".losses.csv"), self.history)
        return p

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, "PNG")
        return buf.getvalue()


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    cols = ["step", "scale", "time", "total", "content", "style", "tv"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    atomic_write(path, buf.getvalue().encode())


def resolve_config(config: StyleConfig | dict[str, Any] | None, overrides: dict[str, Any]) -> StyleConfig:
    if config is None:
        config = StyleConfig()
    elif isinstance(config, dict):
        config = from_dict(config)
    elif not isinstance(config, StyleConfig):
        raise ConfigError(f"config must be a StyleConfig or a dict, not {type(config).__name__}")
    return config.replace(**overrides) if overrides else config


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda, then mps, then cpu. An explicit device that is not there is an error, not a silent CPU run."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device = {name!r} is invalid: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError("--device cuda: no CUDA GPU is available here; use --device cpu (or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ResourceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s); use cuda:0")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ResourceError("--device mps: Apple's MPS is not available here; use --device cpu (or auto)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device = {name!r} is invalid: use auto, cpu, cuda, cuda:N or mps")
    return dev


@functools.lru_cache(maxsize=1)
def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read(1 << 20)
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → what is fastest without hurting the picture on this device.

    CUDA: bf16 (fp16 on GPUs without bf16). CPU: bf16 where the processor has native bf16 units (AVX512-BF16, AMX),
    measured 1.6-1.7x faster than fp32 per step on this project's 2-core EPYC at 256-512 px, with the same quality
    meter figures (style 0.396 vs 0.393, content 1.015 vs 1.018 at 256 px; bench/README.md); fp32 on other CPUs,
    where bf16 is emulated and slower, and on MPS.
    """
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and _cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def available_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(cfgs: Sequence[StyleConfig], size: tuple[int, int], device: torch.device,
                 style_sizes: Sequence[tuple[int, int]] = ()) -> int:
    c = cfgs[0]
    layers = sorted({*c.content_layers, *(n for n, _ in c.style_layers)})
    need = estimate_bytes(*size, layers, batch=len(cfgs), lbfgs_history=100 if c.optimizer == "lbfgs" else 0,
                          tile=c.tile_size, checkpoint=c.checkpoint)
    have = available_memory(device)
    if have is not None and need > 0.9 * have:
        scale = (0.9 * have / need) ** 0.5
        suggestion = max(64, int(max(size) * scale) // 16 * 16)
        tiles = " or --tile-size 1024" if not c.tile_size and max(size) > 1024 else ""
        raise ResourceError(
            f"a {size[1]}x{size[0]} run needs about {need / 2**30:.1f} GiB but {device.type} has "
            f"{have / 2**30:.1f} GiB free; use --size {suggestion}{tiles} or fewer/shallower style layers"
        )
    for sh, sw in style_sizes:  # the style targets' forward pass (no autograd: two full-size activations at once)
        if c.tile_size:
            sh, sw = min(sh, c.tile_size + 192), min(sw, c.tile_size + 192)
        style_need = int(2 * 64 * sh * sw * 4 * 1.3) + WEIGHT_BYTES
        if have is not None and style_need > 0.9 * have:
            raise ResourceError(
                f"the style image at {sw}x{sh} needs about {style_need / 2**30:.1f} GiB but {device.type} has "
                f"{have / 2**30:.1f} GiB free; use a smaller --style-scale or --size"
            )
    return need


def check_sizes(cfgs: Sequence[StyleConfig], prepared: Prepared) -> None:
    """Refuse sizes VGG cannot take: each pooling halves the image, so the deepest layer used needs at least
    2**(poolings before it) pixels a side, at every scale and for every style image (elongated images hit this)."""
    c0 = cfgs[0]
    used = {n for c in cfgs for n in (*(c.content_layers if c.content_weight > 0 else ()), *dict(c.style_layers))}
    deepest = max(used, key=LAYER_NAMES.index)
    need = 2 ** sum(n.startswith("pool") for n in LAYER_NAMES[: LAYER_NAMES.index(deepest) + 1])
    hint = f"{deepest} needs at least {need} px a side"
    h, w = prepared.content.shape[-2:]
    if min(h, w) < need:
        raise ConfigError(f"{prepared.names['content']} becomes {w}x{h} pixels at size {c0.size} and {hint}; "
                          "use a larger --size (or --shape), or shallower layers")
    first = scale_sizes((h, w), c0.start_size, c0.scale_factor)[0]
    if min(first) < need:
        raise ConfigError(f"the first scale (start_size {c0.start_size}) is {first[1]}x{first[0]} pixels and {hint}; "
                          "raise --start-size or use --start-size none")
    for name, style in zip(prepared.names["styles"], prepared.styles):
        sh, sw = style.shape[-2:]
        k = max(1, round(max(first) * c0.style_scale)) / max(sh, sw)  # as the engine sizes it at the first scale
        fh, fw = max(1, round(sh * k)), max(1, round(sw * k))
        if min(sh, sw, fh, fw) < need:
            raise ImageError(f"{name}: becomes {min(sw, fw)}x{min(sh, fh)} pixels as a style and {hint}; use a less "
                             "elongated style image, a larger --style-scale or --start-size none")


def _final_size(content: Image.Image, cfg: StyleConfig) -> tuple[int, int]:
    if cfg.shape is not None:
        return cfg.shape
    return fit_long_side(content.height, content.width, cfg.size)


def fingerprint(*images: Image.Image) -> str:
    h = hashlib.sha256()
    for im in images:
        h.update(f"{im.size}".encode())
        h.update(im.tobytes())
    return h.hexdigest()[:16]


@dataclass
class Prepared:
    """Inputs loaded and resized for a batch: what the engine needs, plus names for the recipe."""

    content: torch.Tensor  # (1, 3, H, W) at the final size; luminance-only when preserve_color="luminance"
    content_rgb: torch.Tensor
    styles: list[torch.Tensor]
    inits: list[torch.Tensor | None]
    names: dict[str, Any]
    fingerprint: str
    notes: list[str]


def prepare(content: ImageLike, styles: Sequence[ImageLike], cfgs: Sequence[StyleConfig],
            device: torch.device) -> Prepared:
    c0 = cfgs[0]
    if isinstance(styles, (str, os.PathLike, Image.Image, torch.Tensor, bytes, LoadedImage)):
        styles = [styles]
    if not styles:
        raise ConfigError("give at least one style image")
    for c in cfgs:
        if c.style_blend is not None and len(c.style_blend) != len(styles):
            raise ConfigError(
                f"style_blend = {','.join(map(str, c.style_blend))} has {len(c.style_blend)} weights for "
                f"{len(styles)} style image(s); give one weight per style image"
            )
    c_img = load_image(content, max_pixels=c0.max_pixels)
    s_imgs = [load_image(s, max_pixels=c0.max_pixels) for s in styles]
    h, w = _final_size(c_img.image, c0)
    content_pil = resize_exact(c_img.image, h, w)
    long_style = max(8, round(max(h, w) * c0.style_scale))
    style_pils = [resize_long(s.image, long_style) for s in s_imgs]
    content_t = pil_to_tensor(content_pil).to(device)
    style_ts = [pil_to_tensor(s).to(device) for s in style_pils]
    inits: list[torch.Tensor | None] = []
    for c in cfgs:
        if c.init in ("content", "noise"):
            inits.append(None)
        else:
            init_img = load_image(c.init, max_pixels=c.max_pixels).image
            inits.append(pil_to_tensor(resize_exact(init_img, h, w)).to(device))
    engine_content = content_t
    if c0.preserve_color == "luminance":
        engine_content = colour.luminance(content_t)
        style_ts = [colour.match_luminance(colour.luminance(s), engine_content) for s in style_ts]
        inits = [colour.luminance(i) if i is not None else None for i in inits]
    names = {"content": c_img.name, "styles": [s.name for s in s_imgs]}
    notes = c_img.notes + [n for s in s_imgs for n in s.notes]
    return Prepared(engine_content, content_t, style_ts, inits, names,
                    fingerprint(content_pil, *style_pils), notes)


def _style_transform(cfg: StyleConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    if cfg.preserve_color == "histogram":
        return colour.match_histogram  # the style takes the content's colour statistics, at every scale
    return None


def _postprocess(cfg: StyleConfig, img: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
    """Engine output → final RGB: luminance-only transfer puts the content's chroma back."""
    if cfg.preserve_color == "luminance":
        return colour.with_chroma_of(img.unsqueeze(0) if img.dim() == 3 else img, content_rgb)[0]
    return img[0] if img.dim() == 4 else img


def recipe(cfg: StyleConfig, device: torch.device, prepared: Prepared, state: RunState | None, index: int,
           elapsed: float) -> dict[str, Any]:
    hist = state.history[index] if state is not None and state.history else []
    return {
        "impasto": __version__,
        "config": cfg.to_dict(),
        "config_key": cfg.key(),
        "device": str(device),
        "weights": cfg.weights,
        "seed": cfg.seed,
        "loss_convention": f"{cfg.loss_norm}: {LOSS_CONVENTIONS[cfg.loss_norm]}",
        "inputs": prepared.names,
        "inputs_fingerprint": prepared.fingerprint,
        "notes": prepared.notes,
        "steps_done": hist[-1]["step"] if hist else 0,
        "final_losses": {k: v for k, v in hist[-1].items() if k not in ("step", "scale", "time")} if hist else {},
        "elapsed_s": round(elapsed, 3),
        "status": state.item_status(index) if state is not None else "done",
        "torch": torch.__version__,
        "precision": resolve_precision(cfg.precision, device),
    }


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
) -> list[Result]:
    """Run several configs that share a size and schedule (see ``core.optimize.batch_key``) as one batch.

    With ``outputs``, each result is saved there (image, recipe, ``.losses.csv``); ``save_every`` snapshots are
    written beside it as ``NAME.stepNNNNN.png``. Outputs are checked before the run starts.
    """
    cfgs = list(configs)
    if not cfgs:
        return []
    groups = {batch_key(c) for c in cfgs}
    if len(groups) > 1:
        raise ConfigError("these configs cannot share a batch (size, schedule, optimiser, ... differ); run them apart")
    c0 = cfgs[0]
    outs = list(outputs) if outputs is not None else [None] * len(cfgs)
    checked = [check_output(o, force=force) if o is not None else None for o in outs]
    one = isinstance(styles, (str, os.PathLike, Image.Image, torch.Tensor, bytes, LoadedImage))
    style_list = [styles] if one else list(styles)
    inputs = {"content image": content, **{f"style image {i + 1}": s for i, s in enumerate(style_list)},
              **{f"init image {c.init}": c.init for c in cfgs if c.init not in ("content", "noise")}}
    for o in checked:
        if o is not None:
            check_not_input(o, inputs)
    device = resolve_device(c0.device)
    prepared = prepare(content, styles, cfgs, device)
    size = tuple(prepared.content.shape[-2:])
    check_sizes(cfgs, prepared)
    check_memory(cfgs, size, device, [tuple(s.shape[-2:]) for s in prepared.styles])  # type: ignore[arg-type, misc]
    model = load_vgg(c0.weights, c0.pooling, str(device))
    t0 = time.perf_counter()

    bar = None
    if progress:
        from tqdm.auto import tqdm  # works in terminals and notebooks

        bar = tqdm(total=total_steps(c0, size) * len(cfgs), unit="step", dynamic_ncols=True, leave=True)  # type: ignore[arg-type]

    snapshots: list[list[tuple[int, Image.Image]]] = [[] for _ in cfgs]

    def on_step(step: Step) -> None:
        cfg = cfgs[step.index]
        render = step.render

        def as_pil() -> Image.Image:
            assert render is not None
            return tensor_to_pil(_postprocess(cfg, render(), prepared.content_rgb))

        if bar is not None:
            bar.update(1)
            if step.index == len(cfgs) - 1:
                bar.set_postfix({k: f"{v:.3g}" for k, v in step.losses.items() if k != "tv" or v}, refresh=False)
        if cfg.save_every and step.step % cfg.save_every == 0:
            out = checked[step.index]
            if out is not None:
                snap = out.with_name(f"{out.stem}.step{step.step:05d}{out.suffix}")
                save_image(as_pil(), snap, {"step": step.step, "config": cfg.to_dict()})
            else:
                snapshots[step.index].append((step.step, as_pil()))
        if callback is not None:
            callback(dataclasses.replace(step, render=as_pil))

    try:
        state = optimize(model, prepared.content, prepared.styles, cfgs, inits=prepared.inits, state=state,
                         callback=on_step, stop=stop, style_transform=_style_transform(c0),
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
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    results = []
    for i, cfg in enumerate(cfgs):
        img = tensor_to_pil(_postprocess(cfg, state.images[i], prepared.content_rgb))
        results.append(Result(image=img, config=cfg, history=state.history[i], status=state.item_status(i),
                              message=state.item_message(i), elapsed=elapsed,
                              recipe=recipe(cfg, device, prepared, state, i, elapsed), state=state,
                              snapshots=snapshots[i]))
        if checked[i] is not None:
            results[-1].save(checked[i])
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
    **overrides: Any,
) -> Result:
    """Paint ``content`` in the manner of ``styles``.

    ``content`` and each style may be a path, an http(s) URL, a PIL image or a (3, H, W) tensor in [0, 1].
    ``config`` is a StyleConfig (or dict); keyword overrides change single fields: ``stylize(c, s, steps=50)``.
    ``callback(step)`` is called after every step with its losses; ``step.image()`` makes the current PIL image.
    ``stop`` ends the run after the current step (``result.status == "cancelled"``); ``state`` continues a run.
    ``output`` saves the result (PNG with its recipe, or JPEG) and its ``.losses.csv``.
    """
    cfg = resolve_config(config, overrides)
    return stylize_batch(content, styles, [cfg], callback=callback, stop=stop, state=state, progress=progress,
                         outputs=[output], force=force)[0]


def save_run_checkpoint(path: str | Path, result: Result) -> Path:
    """Write what ``resume_state`` needs to continue ``result``'s run."""
    assert result.state is not None
    fp = result.recipe["inputs_fingerprint"]
    return save_checkpoint(path, result.state.to_dict(), result.config.to_dict(), fp)


def resume_state(path: str | Path, config: StyleConfig, content: ImageLike, styles: Sequence[ImageLike]) -> RunState:
    """Load a checkpoint and check that it belongs to this config and these inputs."""
    data = load_checkpoint(path)
    try:
        saved = from_dict(data["config"])
    except ConfigError as e:  # written by another version of impasto
        raise ConfigError(f"{path}: its settings do not load here ({e}); delete it and start afresh") from None
    saved = saved.replace(save_every=config.save_every, max_pixels=config.max_pixels)  # these do not change pixels
    if saved.key() != config.key():
        a, b = saved.to_dict(), config.to_dict()
        diff = ", ".join(f"{k} {a[k]!r} (now {b[k]!r})" for k in a if k != "device" and a[k] != b.get(k))
        raise ConfigError(f"{path}: was written with other settings: {diff}; "
                          "use the same settings to resume, or delete the checkpoint")
    device = resolve_device(config.device)
    prepared = prepare(content, styles if isinstance(styles, (list, tuple)) else [styles], [config], device)
    if prepared.fingerprint != data["fingerprint"]:
        raise ConfigError(f"{path}: was written for other input images; use the same images to resume")
    st = data["state"]
    move = lambda v: v.to(device) if isinstance(v, torch.Tensor) else v
    st["images"] = [move(t) for t in st["images"]]
    st["params"] = [move(t) for t in st["params"]] if st.get("params") is not None else None
    st["ema"] = [move(t) for t in st["ema"]] if st.get("ema") is not None else None
    if st.get("opt_state") is not None:
        for s in st["opt_state"]["state"].values():
            for k, v in s.items():
                s[k] = move(v) if k != "step" else v
    return RunState.from_dict(st)


