"""The engine for the frames of a clip, what ``impasto.video`` calls through the api (``api.FrameRunner``).

What every frame shares is made once: the device, the network, the style images and their statistics
(``StyleTargets``: built at the first frame's scales and reused by every later frame at the same size). Then one
``optimize`` call a frame, from a given first image (the previous output warped onto this frame), optionally
warm-started from the previous frame's state (its Adam moments carried and rescaled), with the temporal term's
per-frame data (``extra["temporal"]``) and the frame's index on every Step.

With ``preserve_color = "luminance"`` the engine works on luminance: the style images are matched to the *first*
frame's luminance statistics (not each frame's), so that the targets stay the same over the clip; the earlier
outputs that the temporal term compares with are the engine's luminance images, and each frame's colours are its
own content's.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from .config import StyleConfig
from .core import colour
from .core.events import Step, StopToken
from .core.objective import Guides
from .core.optimize import initial_state, optimize
from .core.state import RunState, warm_start
from .core.targets import StyleTargets
from .forecast import Forecast, forecast
from .inputs import ImageLike, postprocess, prepare, style_transform
from .io.images import pil_to_tensor, resize_exact, tensor_to_pil
from .masks import prepare_masks
from .preflight import check_memory, check_sizes
from .runtime import resolve_device, resolve_precision
from .weights import load_vgg

Pair = tuple[torch.Tensor, torch.Tensor]  # (earlier output warped onto this frame (1, 3, H, W), its mask (1, 1, H, W))


@dataclass
class FrameOutcome:
    """One stylised frame."""

    image: torch.Tensor  # (1, 3, H, W) the engine's output: what later frames are compared with
    picture: Image.Image  # the frame as saved (with ``preserve_color`` applied)
    state: RunState = field(repr=False)
    history: list[dict[str, float]]
    status: str  # done | cancelled | diverged
    message: str
    elapsed: float
    cpu: float = 0.0  # CPU seconds of this process (all its threads) for the frame

    @property
    def moments(self) -> dict | None:
        """Adam's state at the end of the frame (what the next frame's warm start carries), or None."""
        return self.state.opt_state


class FrameRunner:
    """Stylises the frames of one clip, all at the size ``config`` gives the first frame, one call a frame."""

    def __init__(self, first_frame: Image.Image, styles: Sequence[ImageLike], config: StyleConfig,
                 masks: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        prepared = prepare(first_frame, styles, [config], self.device, masks)
        self.size: tuple[int, int] = tuple(prepared.content.shape[-2:])  # type: ignore[assignment]
        check_sizes([config], prepared.content, prepared.styles, prepared.names)
        check_memory([config], self.size, self.device, [tuple(s.shape[-2:]) for s in prepared.styles])  # type: ignore[misc]
        self.names, self.notes, self.fingerprint = prepared.names, prepared.notes, prepared.fingerprint
        self.targets = StyleTargets(prepared.styles, config.style_scale, guides=prepared.style_guides,
                                    transform=style_transform(config), rule=config.mask_rule,
                                    fit=config.style_fit, side=config.size_side)
        self.guides, self.keep = prepared.guides, (prepared.keeps or [None])[0]  # masks: the first frame's
        self.style_sizes = [tuple(t.shape[-2:]) for t in prepared.styles]
        self.palette = prepared.palette
        self.model = load_vgg(config.weights, config.pooling, str(self.device), config.padding)
        self.precision = resolve_precision(config.precision, self.device)
        self.style_sizes = [tuple(s.shape[-2:]) for s in prepared.styles]

    def forecast(self, config: StyleConfig | None = None, *, measure: bool = True) -> Forecast:
        """What one frame of ``config`` (default: the clip's) will take here; ``measure``: calibrate this machine
        now if it never was."""
        return forecast([config or self.config], self.size, self.style_sizes, self.device, self.precision,
                        measure=measure)  # type: ignore[arg-type]

    @property
    def target_builds(self) -> int:
        """How many times the style statistics were computed (once per scale size for a whole clip)."""
        return self.targets.builds

    def frame_masks(self, images: Mapping[str, Any]) -> tuple[Guides | None, torch.Tensor | None]:
        """A frame's own masks (``masks``, ``keep_mask``: paths or images, e.g. carried along the flow) → what
        ``run(masks=...)`` takes: the guides and the keep mask, checked as the first frame's were."""
        m = prepare_masks([self.config], self.size, self.names["styles"], self.style_sizes, self.device,  # type: ignore[arg-type]
                          images)
        return m.guides, (m.keeps or [None])[0]

    def content(self, frame: Image.Image) -> tuple[torch.Tensor, torch.Tensor]:
        """A frame → (what the engine matches: RGB or luminance, the RGB), (1, 3, H, W) at the clip's size."""
        rgb = pil_to_tensor(resize_exact(frame.convert("RGB"), *self.size)).to(self.device)
        return (colour.luminance(rgb) if self.config.preserve_color == "luminance" else rgb), rgb

    def engine_image(self, picture: Image.Image) -> torch.Tensor:
        """A saved frame read back (a resumed clip) as the engine's image of it."""
        return self.content(picture)[0]

    def run(self, frame: Image.Image, config: StyleConfig | None = None, *, init: torch.Tensor | None = None,
            previous: RunState | None = None, moments: dict | None = None, temporal: Sequence[Pair] = (), index: int = 0,
            callback: Callable[[Step], None] | None = None, stop: StopToken | None = None,
            masks: tuple[Guides | None, torch.Tensor | None] | None = None) -> FrameOutcome:
        """Stylise one frame with ``config`` (default: the clip's; a later frame's short schedule differs only in
        its schedule fields). ``init``: the first image (engine space, the clip's size; None: the config's init);
        ``previous``: the previous frame's state, whose Adam moments are carried (or ``moments``: those moments as
        ``FrameOutcome.moments`` gave them, e.g. read back for a resumed clip); ``temporal``: the pairs the
        temporal term compares with; ``index``: the frame's index, on every Step; ``masks``: this frame's
        (``frame_masks``; default: the first frame's)."""
        cfg = config or self.config
        guides, keep = masks if masks is not None else (self.guides, self.keep)
        content, rgb = self.content(frame)
        if previous is None and moments is not None:
            previous = RunState(images=[content], opt_state=moments)
        if previous is not None:
            state = warm_start(previous, images=[init if init is not None else content])
        else:
            state = initial_state(content, [cfg], [init])

        def render() -> Image.Image:
            return tensor_to_pil(postprocess(cfg, state.images[0].detach().clone(), rgb, keep, self.palette))

        def on_step(step: Step) -> None:
            if callback is not None:
                callback(dataclasses.replace(step, render=render))

        t0, c0 = time.perf_counter(), time.process_time()
        state = optimize(self.model, content, self.targets, [cfg], state=state, callback=on_step, stop=stop,
                         guides=guides, precision=self.precision, frame=index,
                         extra={"temporal": list(temporal)} if temporal else None)
        image = state.images[0].detach()
        if tuple(image.shape[-2:]) != self.size:  # stopped before the last scale: not a finished frame anyway
            image = torch.nn.functional.interpolate(image, size=self.size, mode="bilinear", align_corners=False)
        picture = tensor_to_pil(postprocess(cfg, image, rgb, keep, self.palette))
        return FrameOutcome(image, picture, state, state.history[0], state.item_status(0), state.item_message(0),
                            time.perf_counter() - t0, time.process_time() - c0)
