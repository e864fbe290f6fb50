"""Loading and saving images.

Loading: a path, an http(s) URL, a PIL image or a tensor → RGB. EXIF orientation is honoured; grey, palette, CMYK,
16-bit and alpha images are converted to RGB. Transparent areas are composited over white (what a viewer shows on
a page), not dropped to black. Animated GIF/WebP/PNG: the first frame is used (``load_image`` reports it in
``notes``). A file whose declared size exceeds ``max_pixels`` is refused before it is decoded.

Saving: PNG or JPEG by extension, written to a temporary file in the same folder and renamed, so an interrupted
write never leaves a broken file. PNGs carry the run's recipe as JSON in an ``impasto`` text chunk.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import secrets
import stat
import threading
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..errors import ImageError, OutputError

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
RECIPE_KEY = "impasto"
URL_TIMEOUT = 20.0
URL_MAX_BYTES = 50 * 1024 * 1024
MIN_SIDE = 8
_PIXEL_LIMIT_LOCK = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-wide: one loader at a time


@dataclass
class LoadedImage:
    image: Image.Image  # RGB
    name: str
    notes: list[str] = field(default_factory=list)


def _read_url(url: str, max_bytes: int | None = None, timeout: float | None = None) -> bytes:
    """Fetch an image over http(s): a per-read timeout, an overall deadline and a size cap (checked on the
    declared Content-Length first, then while reading, so a huge or endless answer is never held in memory)."""
    max_bytes = URL_MAX_BYTES if max_bytes is None else max_bytes
    timeout = URL_TIMEOUT if timeout is None else timeout
    too_big = f"{url}: larger than {max_bytes / 2**20:.3g} MB; download it and resize it first"
    req = urllib.request.Request(url, headers={"User-Agent": "impasto"})
    deadline = time.monotonic() + 3 * timeout
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # http(s) only: checked by the caller
            ctype = resp.headers.get("Content-Type", "") or ""
            if ctype.lower().startswith(("text/", "application/json", "application/xhtml")):
                kind = ctype.split(";")[0].strip()
                raise ImageError(f"{url}: the server returned {kind}, not an image; use the image's own address")
            declared = resp.headers.get("Content-Length")
            if declared and declared.strip().isdigit() and int(declared) > max_bytes:
                raise ImageError(too_big)
            chunks, size = [], 0
            while True:
                chunk = resp.read(min(1 << 16, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise ImageError(too_big)
                if time.monotonic() > deadline:
                    raise ImageError(f"{url}: the download took longer than {3 * timeout:g} s; download it yourself")
            data = b"".join(chunks)
    except ImageError:
        raise
    except urllib.error.HTTPError as e:
        e.close()
        raise ImageError(f"{url}: the server answered HTTP {e.code}; check the address") from None
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e or type(e).__name__
        raise ImageError(f"{url}: cannot be fetched ({reason}); check the address or download the file") from None
    if data[:512].lstrip().lower().startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        raise ImageError(f"{url}: the server returned a web page, not an image; use the image's own address")
    return data


def _open(source: str | os.PathLike[str] | bytes, name: str, max_pixels: int) -> LoadedImage:
    notes: list[str] = []
    if isinstance(source, bytes):
        if not source:
            raise ImageError(f"{name}: no data (0 bytes)")
        fp: Any = io.BytesIO(source)
    else:
        path = Path(source)
        try:
            if not path.exists():
                raise ImageError(f"{name}: no such file; check the path")
            if path.is_dir():
                raise ImageError(f"{name}: is a directory, not an image file")
            if path.stat().st_size == 0:
                raise ImageError(f"{name}: the file is empty (0 bytes)")
        except OSError as e:  # a name too long, a permission problem on the way to it
            raise ImageError(f"{name}: cannot be read ({e.strerror or type(e).__name__})") from None
        fp = path
    try:
        with warnings.catch_warnings():
            # Pillow's warnings about a user's file (corrupt EXIF, transparency in a palette, the size) are noise
            # here: what matters is raised, and caught below.
            warnings.simplefilter("ignore")
            with _PIXEL_LIMIT_LOCK:
                old = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None  # our own limit below, with our own message
                try:
                    opened = Image.open(fp)
                finally:
                    Image.MAX_IMAGE_PIXELS = old
            with opened as im:  # closes the file (a GIF keeps it open for its other frames)
                w, h = im.size
                if w * h > max_pixels:  # refused from the header alone, before a single pixel is decoded
                    raise ImageError(
                        f"{name}: declares {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,}; "
                        "shrink it first or raise the limit with --max-pixels"
                    )
                if getattr(im, "is_animated", False) or getattr(im, "n_frames", 1) > 1:
                    notes.append(f"{name}: has {im.n_frames} frames (animated or multi-page); using the first frame")
                    im.seek(0)
                im.load()
                try:
                    upright = ImageOps.exif_transpose(im)
                except Exception:  # a damaged EXIF block should not cost the picture
                    notes.append(f"{name}: its EXIF orientation could not be read; using the image as stored")
                    upright = im
                try:
                    rgb = to_rgb(upright)
                except ImageError as e:
                    raise ImageError(f"{name}: {e}") from None
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image Pillow can read (use PNG, JPEG, WebP, GIF, BMP or TIFF)") from None
    except MemoryError:
        raise ImageError(f"{name}: too large to decode in the memory available; shrink it first") from None
    except Exception as e:  # a malformed file makes decoders raise anything; it is bad input, not a bug
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageError(f"{name}: broken or truncated image ({msg}); re-export or re-download it") from None
    if min(rgb.size) < MIN_SIDE:
        raise ImageError(f"{name}: {rgb.size[0]}x{rgb.size[1]} pixels is too small; use at least {MIN_SIDE} px a side")
    return LoadedImage(rgb, name, notes)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any mode → RGB. 16-bit greys are scaled to 8 bits; alpha is composited over white."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        # I;16 is always 0..65535 (a dark 16-bit picture is still 16-bit); "I" may hold 8- or 16-bit data.
        top = 65535.0 if im.mode != "I" or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        im = Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1 else 1.0), 0, 255).astype(np.uint8), "L")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, im).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:  # e.g. LAB or HSV TIFFs: Pillow has no conversion to RGB
        raise ImageError(f"colour mode {im.mode} is not supported; convert the image to RGB first") from None


def load_image(source: Any, *, max_pixels: int = 40_000_000, name: str | None = None) -> LoadedImage:
    """A path, URL, bytes, PIL image or tensor (3, H, W)/(1, 3, H, W) in [0, 1] → RGB PIL image."""
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, Image.Image):
        return LoadedImage(to_rgb(ImageOps.exif_transpose(source)), name or "<PIL image>")
    if isinstance(source, torch.Tensor):
        return LoadedImage(tensor_to_pil(source), name or "<tensor>")
    if isinstance(source, bytes):
        return _open(source, name or "<upload>", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text[:8].lower().startswith(("http://", "https://")):
            return _open(_read_url(text), name or text, max_pixels)
        return _open(text, name or text, max_pixels)
    raise ImageError(f"cannot use a {type(source).__name__} as an image; give a path, URL, PIL image or tensor")


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL → (1, 3, H, W) float32 in [0, 1]."""
    arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) in [0, 1] → RGB PIL (rounded, not truncated)."""
    t = t.detach().float().cpu()
    if t.dim() == 4:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ImageError(f"expected a (3, H, W) image tensor, got shape {tuple(t.shape)}")
    arr = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def resize_long(im: Image.Image, long_side: int) -> Image.Image:
    """Resize so the long side is exactly ``long_side`` (Lanczos; up or down)."""
    w, h = im.size
    s = long_side / max(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)


def resize_exact(im: Image.Image, height: int, width: int) -> Image.Image:
    return im if im.size == (width, height) else im.resize((width, height), Image.Resampling.LANCZOS)


def check_output(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Refuse, before any work, an output that could not be written: folder, extension, existing file.

    An existing file is overwritten only with ``force`` (never numbered: a script must know its output's name), and
    never when it is read-only. The folder is tested by creating (and removing) a file in it, which is the only test
    that also holds for root, read-only mounts and /proc.
    """
    p = Path(path)
    if not str(path).strip() or not p.name:
        raise OutputError(f"output {str(path)!r}: give a file name ending in .png or .jpg")
    if p.is_dir():
        raise OutputError(f"{p}: is a directory; give a file name ending in .png or .jpg")
    ext = p.suffix.lower()
    if ext not in SAVE_FORMATS:
        what = f"unknown image extension {ext!r}" if ext else "no image extension"
        raise OutputError(f"{p}: {what}; use .png or .jpg")
    folder = p.parent
    if not folder.is_dir():
        raise OutputError(f"{p}: the folder {folder} does not exist; create it first")
    if p.exists() or p.is_symlink():
        if not force:
            raise OutputError(f"{p}: already exists; pass --force to overwrite it or choose another name")
        mode = p.stat().st_mode if p.exists() else 0
        if not (mode & 0o222) or not os.access(p, os.W_OK):
            raise OutputError(f"{p}: exists and is read-only; --force will not replace it (make it writable first)")
    try:
        fd, probe = _create_temp(p, ".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{p}: cannot write in the folder {folder} ({e.strerror or type(e).__name__})") from None
    return p


def check_not_input(output: str | os.PathLike[str], inputs: dict[str, Any]) -> None:
    """Refuse an output that is one of the run's own input files (even with --force): it would be overwritten."""
    out = Path(output)
    if not out.exists():
        return
    for role, source in inputs.items():
        if isinstance(source, (str, os.PathLike)) and not os.fspath(source)[:8].lower().startswith(("http://",
                                                                                                     "https://")):
            try:
                same = os.path.samefile(source, out)
            except OSError:
                same = False
            if same:
                raise OutputError(f"{out}: is also the {role}; choose another output name so it is not overwritten")


def _create_temp(p: Path, suffix: str) -> tuple[int, str]:
    """A new file beside ``p`` with the permissions a plain ``open`` would give (0666 less the umask), not 0600."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(p.with_name(f".{p.name}.{secrets.token_hex(4)}{suffix}"))
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {p}")


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes to a temporary file beside ``path``, flush it to disk, then rename it into place.

    A reader, a crash or a Ctrl-C sees either the old file or the new one, never half of one. Replacing a file keeps
    its permissions.
    """
    p = Path(path)
    fd, tmp = _create_temp(p, ".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if p.exists():
            os.chmod(tmp, stat.S_IMODE(p.stat().st_mode))
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def encode_image(im: Image.Image, fmt: str, recipe: dict[str, Any] | None = None) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        if recipe is not None:
            info.add_itxt(RECIPE_KEY, json.dumps(recipe, sort_keys=True, default=str), zip=True)
        im.save(buf, "PNG", pnginfo=info)
    else:
        im.save(buf, "JPEG", quality=95, subsampling=0)
    return buf.getvalue()


def save_image(im: Image.Image, path: str | os.PathLike[str], recipe: dict[str, Any] | None = None) -> Path:
    """Save PNG (with the recipe in its metadata) or JPEG, atomically."""
    p = Path(path)
    fmt = SAVE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise OutputError(f"{p}: unknown image extension {p.suffix!r}; use .png or .jpg")
    try:
        atomic_write(p, encode_image(im, fmt, recipe))
    except OSError as e:
        raise OutputError(f"{p}: cannot write ({e.strerror or e})") from None
    return p


def read_recipe(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The recipe stored in a PNG written by impasto."""
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: no such file")
    try:
        with Image.open(p) as im:
            text = im.text.get(RECIPE_KEY) if hasattr(im, "text") else None  # type: ignore[attr-defined]
    except (UnidentifiedImageError, OSError):
        raise ImageError(f"{p}: not an image") from None
    if not text:
        raise ImageError(f"{p}: carries no impasto recipe (only PNGs written by impasto do)")
    return json.loads(text)
