"""A job's form (multipart: the images and a ``config`` JSON field) → decoded images and a StyleConfig.

Uploads are checked by decoding them (never by name or content type); a file's name is only a display label; the
settings are validated like everywhere else (``config.from_dict``) and then by the server's own rules (``Limits``,
no paths from a request).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, get_type_hints

from ..bounds import MAX_NESTING, nesting
from ..config import StyleConfig, from_dict
from ..errors import ConfigError, ImageError
from ..io.images import LoadedImage, load_image, read_header
from ..io.shrink import Keep
from . import MissingExtra
from .budget import DecodeBudget, weight
from .middleware import TooLarge

try:
    from fastapi import HTTPException, UploadFile
    from starlette.concurrency import run_in_threadpool
except ModuleNotFoundError as e:  # the optional extra
    raise MissingExtra(f"impasto serve needs {e.name}: pip install 'impasto[web]'") from None

# Settings that belong to the server, not to a request: where it runs, how big an input may be, files on disk.
SERVER_FIELDS = {"device": "impasto serve --device", "max_pixels": "impasto serve --max-pixels",
                 "save_every": "previews come through /events"}
CONFIG_EXAMPLE = '{"size": 256, "style_weight": 30}'
# Settings that are paths or URLs of images (masks), found by their annotation, so that a new one is refused too.
PATH_FIELDS = tuple(name for name, hint in get_type_hints(StyleConfig).items() if "ImagePath" in str(hint))
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for (``impasto serve --max-upload-mb/--max-pixels/--max-size``)."""

    max_upload_bytes: int = 32 * 2**20  # the whole multipart request
    max_pixels: int = 25_000_000  # per input image, checked from its header before decoding
    max_size: int = 2048  # long side of the result
    max_styles: int = 3
    decode_budget: int = 0  # pixels all requests together may be decoding at once; 0: one request of the largest

    def __post_init__(self) -> None:
        if not self.decode_budget:  # the largest request fits: its images' pixels, and its bytes at 4 a pixel
            budget = (self.max_styles + 1) * self.max_pixels + self.max_upload_bytes // 4
            object.__setattr__(self, "decode_budget", budget)


# (bytes, display label, form field) of one uploaded file, read but not decoded yet
Upload = tuple[bytes, str, str]


def label(filename: str | None, fallback: str) -> str:
    """An uploaded file's name as a display label only: no folders, printable, short."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()[:80]
    return name or fallback


def parse_config(text: str, blend: str | None, n_styles: int, device: str, limits: Limits) -> StyleConfig:
    """The ``config`` form field (JSON) → a StyleConfig validated like everywhere else, plus the server's rules."""
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise HTTPException(400, f"config is not valid JSON ({e.msg} at character {e.pos}); "
                                 f"send an object such as {CONFIG_EXAMPLE}") from None
    except RecursionError:  # json's C parser stops at Python's recursion limit: arrays or objects nested ~1000 deep
        raise HTTPException(422, f"config is nested too deeply; settings nest at most {MAX_NESTING} levels") from None
    except ValueError as e:  # an integer over Python's 4300 digits
        raise HTTPException(422, f"config holds a number too long to read ({str(e).split(':')[0]}); no setting "
                                 "needs more than a few digits") from None
    if not isinstance(data, dict):
        raise HTTPException(400, f"config must be a JSON object such as {CONFIG_EXAMPLE}")
    if nesting(data, MAX_NESTING) > MAX_NESTING:
        raise HTTPException(422, f"config is nested over {MAX_NESTING} levels deep; settings nest at most "
                                 f"{MAX_NESTING} levels (style_layers, the deepest, needs 3)")
    for key, where in SERVER_FIELDS.items():
        if key in data:
            raise HTTPException(422, f"{key} is set by the server ({where}); leave it out of config")
    if blend is not None:
        if "style_blend" in data:
            raise HTTPException(422, "style_blend is given twice (form field and config); give it once")
        data["style_blend"] = blend
    try:
        cfg = from_dict(data)
    except ConfigError as e:
        raise HTTPException(422, str(e)) from None
    check_server_rules(cfg, n_styles, limits)
    return cfg.replace(device=device)


def check_server_rules(cfg: StyleConfig, n_styles: int, limits: Limits) -> None:
    """What a valid config may still not ask of this server: paths, a result over ``max_size``, a blend that does
    not match the uploads."""
    if cfg.init not in ("content", "noise"):
        raise HTTPException(422, f"init = {cfg.init!r} is invalid here: use content or noise "
                                 "(the server reads no paths from requests)")
    for key in PATH_FIELDS:  # masks name image files or URLs: a request may not make the server read either
        if getattr(cfg, key) is not None:
            raise HTTPException(422, f"{key} is invalid here: it names image files or URLs, and the server reads no "
                                     "paths or URLs from requests")
    if cfg.weights not in ("bundled", "torchvision"):
        raise HTTPException(422, f"weights = {cfg.weights!r} is invalid here: use bundled or torchvision "
                                 "(the server reads no paths from requests)")
    long_side = max(cfg.shape) if cfg.shape else cfg.size
    if long_side > limits.max_size:
        raise HTTPException(422, f"size = {long_side} is over this server's limit of {limits.max_size} px "
                                 "(impasto serve --max-size)")
    if cfg.style_blend is not None and len(cfg.style_blend) != n_styles:
        raise HTTPException(422, f"style_blend has {len(cfg.style_blend)} weights for {n_styles} style image(s); "
                                 "give one weight per style image")


async def read_uploads(content: UploadFile, styles: list[UploadFile], limits: Limits) -> list[Upload]:
    """Read the content and style files (each at most the request's cap; the body limit has counted them too)."""
    files = [("content", content, "content")] + [(f"style {i + 1}", f, f"style-{i + 1}")
                                                  for i, f in enumerate(styles)]
    raw = []
    for field, f, fallback in files:
        data = await f.read(limits.max_upload_bytes + 1)
        await f.close()
        if len(data) > limits.max_upload_bytes:
            raise TooLarge(limits.max_upload_bytes)
        raw.append((data, label(f.filename, fallback), field))
    return raw


def decode(data: bytes, name: str, field: str, limits: Limits, keep: Keep | None = None) -> LoadedImage:
    """Bytes → RGB image, or a 400 that names the form field and the problem. The type is what decodes. ``keep``:
    decode no larger than that needs (``io.shrink``)."""
    if not data:
        raise HTTPException(400, f"{field}: the file {name!r} is empty")
    try:
        return load_image(data, max_pixels=limits.max_pixels, name=name, keep=keep)
    except ImageError as e:
        raise HTTPException(400, f"{field}: {e}") from None


def content_keep(cfg: StyleConfig) -> Keep:
    """What the content must keep for ``cfg``'s result: its shape, its long side, or (``size_side = 'short'``) its
    short side, which an exact (size, size) keeps in either orientation."""
    if cfg.shape:
        return cfg.shape
    return cfg.size if cfg.size_side == "long" else (cfg.size, cfg.size)


def style_keep(cfg: StyleConfig, content: LoadedImage, limits: Limits) -> Keep:
    """What each style must keep for the result this content gives (sized as ``inputs.prepare`` sizes them:
    ``style_scale`` × the result's side, or the result's shape when stretched); a result over the server's
    ``max_size`` (a short side on a wide photo) is refused here, once the content's shape is known."""
    h, w = cfg.result_size(content.image.height, content.image.width)
    if max(h, w) > limits.max_size:
        raise HTTPException(422, f"size = {cfg.size} on the short side makes this photo's result {w}x{h} px, over "
                                 f"this server's limit of {limits.max_size} px (impasto serve --max-size)")
    if cfg.style_fit == "stretch":
        return max(8, round(h * cfg.style_scale)), max(8, round(w * cfg.style_scale))
    side = max(8, round((max(h, w) if cfg.size_side == "long" else min(h, w)) * cfg.style_scale))
    return side if cfg.size_side == "long" else (side, side)


def decode_all(uploads: list[Upload], limits: Limits,
               cfg: StyleConfig | None = None) -> tuple[LoadedImage, list[LoadedImage]]:
    """The content image and the style images (CPU work: call it off the event loop), each decoded no larger than
    ``cfg``'s result needs when it is given."""
    (data, name, field), *rest = uploads
    content = decode(data, name, field, limits, content_keep(cfg) if cfg is not None else None)
    keep = style_keep(cfg, content, limits) if cfg is not None else None
    return content, [decode(data, name, field, limits, keep) for data, name, field in rest]


def request_cost(files: list[UploadFile], limits: Limits) -> int:
    """What decoding a request will hold, in 4-byte pixels, from its images' headers (nothing is decoded): each
    image's declared pixels (a larger one than ``max_pixels`` is refused from its header, and costs nothing) times
    what its decoder holds per pixel (``budget.weight``), plus its bytes, a pixel per 4."""
    total = 0
    for f in files:
        head = read_header(f.file)
        if head is not None and head.width * head.height <= limits.max_pixels:
            total += round(head.width * head.height * weight(head.format, head.mode))
        total += (f.size or 0) // 4
    return total


async def decoded(budget: DecodeBudget, content: UploadFile, styles: list[UploadFile], limits: Limits,
                  cfg: StyleConfig, then: Callable[[LoadedImage, list[LoadedImage]], T]) -> T:
    """Wait for the request's share of the decode budget, then read and decode its images and pass them to
    ``then`` (off the event loop), holding the share until ``then`` returns (it stores them, and lets them go)."""
    cost = await run_in_threadpool(request_cost, [content, *styles], limits)
    async with budget.hold(cost):
        uploads = await read_uploads(content, styles, limits)
        return await run_in_threadpool(lambda: then(*decode_all(uploads, limits, cfg)))
