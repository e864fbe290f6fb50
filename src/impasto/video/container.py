"""Frames in: a video file (PyAV: mp4, mov, webm, mkv, avi, animated GIF) or a folder of images, decoded once and
resized to the processing size. Frames out: a video file by extension (encoded at the end, at the input's frame
rate, with the input's audio for the same stretch of time) or a folder of PNGs (see ``frames.FrameStore``).

Frames are kept in memory as uint8 arrays at the processing size (a 10-second 30 fps clip at 512 px is ~130 MB).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ImageError, OutputError
from ..io.files import HOST_TAG, os_reason, path_problem, write_error
from . import require

VIDEO_EXTS = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".gif")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_FPS = Fraction(24)  # a folder of frames has no rate of its own: --fps sets it
# Output container → (ffmpeg format, video codec, encoder options, audio codec or None)
ENCODERS: dict[str, tuple[str, str, dict[str, str], str | None]] = {
    ".mp4": ("mp4", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".m4v": ("mp4", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".mov": ("mov", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".mkv": ("matroska", "libx264", {"crf": "18", "preset": "medium"}, "aac"),
    ".webm": ("webm", "libvpx-vp9", {"crf": "30", "b": "0"}, "libopus"),
    ".avi": ("avi", "mpeg4", {"qscale": "2"}, None),
}
Fit = Callable[[int, int], tuple[int, int]]  # the source's (h, w) → the processing size's


@dataclass
class Clip:
    """The frames taken from a source, at the processing size."""

    frames: list[np.ndarray]  # each (H, W, 3) uint8
    fps: Fraction
    name: str
    source: Path
    start: int = 0  # index of the first frame taken, in the source
    source_size: tuple[int, int] = (0, 0)  # (h, w) before resizing
    audio: bool = False  # the source has an audio stream
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].shape[:2]  # type: ignore[return-value]

    def span(self) -> tuple[float, float]:
        """The seconds of the source that the frames taken cover (for the audio)."""
        return float(self.start / self.fps), float((self.start + len(self.frames)) / self.fps)


def _resize(rgb: np.ndarray, fit: Fit | None) -> np.ndarray:
    if fit is None:
        return rgb
    h, w = fit(*rgb.shape[:2])
    if (h, w) == rgb.shape[:2]:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.LANCZOS))


def read_clip(source: str | os.PathLike[str], *, start: int = 0, count: int | None = None, fit: Fit | None = None,
              fps: Fraction | None = None) -> Clip:
    """Decode ``count`` frames (None: all) from frame ``start`` of a video file or a folder of images; at least two.
    ``fps``: a folder's frame rate (a video file has its own).

    A stream that is corrupt part way gives the frames before the damage, with a note saying where it stopped."""
    path = Path(source)
    if start < 0 or (count is not None and count < 1):
        raise ImageError(f"{path}: --start must be >= 0 and --frames >= 1")
    if path.is_dir():
        clip = _read_folder(path, start, count, fit, fps or FOLDER_FPS)
    else:
        problem = path_problem(path)
        if problem is not None:
            raise ImageError(f"{path}: {problem}")
        clip = _read_video(path, start, count, fit)
    if len(clip.frames) < 2:
        what = "no frame" if not clip.frames else "1 frame"
        where = f" from frame {start} on" if start else ""
        raise ImageError(f"{path}: has {what}{where}; a video needs at least 2 (use 'impasto stylize' for a still)")
    return clip


def _natural(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _read_folder(folder: Path, start: int, count: int | None, fit: Fit | None, fps: Fraction) -> Clip:
    from ..io.images import load_image

    names = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")),
                   key=lambda p: _natural(p.name))
    if not names:
        raise ImageError(f"{folder}: no image files ({', '.join(IMAGE_EXTS)}) in this folder")
    chosen = names[start:start + count if count is not None else None]
    frames, first_size, notes = [], None, []
    for p in chosen:
        loaded = load_image(p)
        size = loaded.image.size
        if first_size is None:
            first_size, first_name = size, p.name
        elif size != first_size:
            raise ImageError(f"{folder}: frames have different sizes: {first_name} is {first_size[0]}x{first_size[1]}, "
                             f"{p.name} is {size[0]}x{size[1]}; give frames of one size")
        frames.append(_resize(np.asarray(loaded.image), fit))
        if loaded.alpha is not None and not notes:  # said once: the frame loop paints RGB frames
            notes.append(f"{p.name}: transparent; frames are painted over white (impasto video keeps no alpha)")
    source_size = (first_size[1], first_size[0]) if first_size else (0, 0)
    return Clip(frames, fps, folder.name, folder, start, source_size, notes=notes)


def _read_video(path: Path, start: int, count: int | None, fit: Fit | None) -> Clip:
    av = require("av")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise ImageError(f"{path}: is not a video that can be read ({_reason(e)}); give an mp4, mov, webm, mkv, avi "
                         "or animated GIF file, or a folder of frames") from None
    with container:
        if not container.streams.video:
            raise ImageError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = Fraction(stream.average_rate or stream.guessed_rate or 0) or FOLDER_FPS
        # The frames the file says it has: its header's count, or its duration at its rate (Matroska, MPEG-TS).
        declared = int(stream.frames or 0) or (round(container.duration / 1e6 * fps) if container.duration else 0)
        frames, decoded, problem = _decode(container, stream, start, count, fit)
        wanted = declared if count is None else min(declared, start + count)
        notes = []
        if problem:
            notes.append(f"{path.name}: the video stream is corrupt after frame {decoded - 1} ({problem}); "
                         f"stylising the {len(frames)} frames before it")
        elif declared and decoded < wanted - 1:  # one frame of slack: durations are rounded
            notes.append(f"{path.name}: the video stream ends at frame {decoded - 1} although the file says it has "
                         f"{declared} frames (truncated or damaged?); stylising the {len(frames)} frames that decode")
        source_size = (stream.codec_context.height, stream.codec_context.width)
        audio = bool(container.streams.audio)
    if not frames and decoded > 0 and not notes:
        raise ImageError(f"{path}: has {decoded} frames; --start {start} leaves none")
    return Clip(frames, fps, path.name, path, start, source_size, audio, notes)


def _decode(container: Any, stream: Any, start: int, count: int | None, fit: Fit | None
            ) -> tuple[list[np.ndarray], int, str]:
    """→ (the frames taken, resized; how many frames decoded in all; what went wrong, or "")."""
    av = require("av")
    frames: list[np.ndarray] = []
    decoded = 0
    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:
                return frames, decoded, "a damaged packet"
            for frame in packet.decode():
                decoded += 1
                if decoded <= start:
                    continue
                if count is not None and len(frames) >= count:
                    return frames, decoded, ""
                frames.append(_resize(frame.to_ndarray(format="rgb24"), fit))
    except (av.error.FFmpegError, ValueError) as e:
        return frames, decoded, _reason(e)
    return frames, decoded, ""


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "strerror", None) or e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]


# -- output ------------------------------------------------------------------------------------------------------------
def is_video_output(path: str | os.PathLike[str]) -> bool:
    """A video file by its extension; anything else (no extension, an existing folder, a trailing /) is a folder."""
    p = Path(path)
    return p.suffix.lower() in VIDEO_EXTS and not str(path).endswith(("/", os.sep)) and not p.is_dir()


def check_video_output(path: str | os.PathLike[str], *, force: bool) -> Path:
    """Refuse, before any work, an output video that could not be written: its folder, its extension, a file that
    is already there (without ``force``). A folder output is checked by ``frames.FrameStore``."""
    p = Path(path)
    if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
        raise OutputError(f"{p}: is an image name; give a video file (.mp4, .webm, .gif, ...) or a folder for PNG "
                          "frames")
    folder = p.parent
    if not folder.is_dir():
        raise OutputError(f"{p}: the folder {folder} does not exist; create it first")
    if p.exists() and not force:
        raise OutputError(f"{p}: already exists; pass --force to overwrite it or choose another name")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputError(f"{p}: exists and is read-only; --force will not replace it (make it writable first)")
    probe = folder / f".{p.name[:180]}.{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}.probe"
    try:
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise OutputError(f"{p}: cannot write in the folder {folder} ({os_reason(e)})") from None
    return p


def _temp_beside(p: Path) -> Path:
    # Named like io.files' temporaries, so that clean_stale_temps removes one that a killed writer left.
    return p.with_name(f".{p.name[:180]}.{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}.part")


def write_video(path: Path, frames: Sequence[Callable[[], Image.Image]], fps: Fraction, *,
                audio_from: Clip | None = None, comment: str = "") -> list[str]:
    """Encode frames (each a function giving a PIL image, read one at a time) into ``path`` at ``fps``, with the
    audio of ``audio_from`` for the same seconds when the container takes audio; atomically (a temporary file
    renamed into place). Returns notes (audio left out, odd sizes padded)."""
    tmp = _temp_beside(path)
    try:
        if path.suffix.lower() == ".gif":
            notes = _write_gif(tmp, frames, fps)
            if audio_from is not None and audio_from.audio:
                notes.append("a GIF has no sound: the input's audio is left out")
        else:
            notes = _write_av(tmp, path.suffix.lower(), frames, fps, audio_from, comment)
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e, "the video") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return notes


def _write_gif(tmp: Path, frames: Sequence[Callable[[], Image.Image]], fps: Fraction) -> list[str]:
    images = [f() for f in frames]
    duration = max(20, round(100 / float(fps)) * 10)  # GIF delays are in 10 ms units; browsers slow anything under 20
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return [] if abs(duration - 1000 / float(fps)) < 5 else [
        f"a GIF's frame delay is a multiple of 10 ms: {fps} fps is written as {1000 / duration:.3g} fps"]


def _write_av(tmp: Path, ext: str, frames: Sequence[Callable[[], Image.Image]], fps: Fraction,
              audio_from: Clip | None, comment: str) -> list[str]:
    av = require("av")
    fmt, codec, options, audio_codec = ENCODERS.get(ext, ENCODERS[".mp4"])
    notes: list[str] = []
    first = frames[0]()
    w, h = first.size
    even = (w + w % 2, h + h % 2)  # 4:2:0 chroma needs even sides: the last row/column is repeated
    if even != (w, h):
        notes.append(f"{w}x{h} frames are padded to {even[0]}x{even[1]} (4:2:0 video needs even sides)")
    with av.open(str(tmp), "w", format=fmt) as out:
        if comment:
            out.metadata["comment"] = comment
        stream = out.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = even[0], even[1], "yuv420p"
        audio = _audio_stream(out, audio_codec, audio_from, notes)
        for i, make in enumerate(frames):
            rgb = np.asarray(first if i == 0 else make())
            if even != (w, h):
                rgb = np.pad(rgb, ((0, even[1] - h), (0, even[0] - w), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio is not None:
            _copy_audio(out, audio, audio_from)  # type: ignore[arg-type]
    return notes


def _audio_stream(out: Any, codec: str | None, clip: Clip | None, notes: list[str]) -> Any:
    if clip is None or not clip.audio:
        return None
    if codec is None:
        notes.append(f"{Path(out.name).suffix or 'this'} output carries no audio here: the input's audio is left out")
        return None
    av = require("av")
    with av.open(str(clip.source)) as inp:
        src = inp.streams.audio[0]
        rate = 48000 if codec == "libopus" else (src.rate or 44100)
        layout = "stereo" if (src.layout.nb_channels if src.layout else 2) >= 2 else "mono"
    stream = out.add_stream(codec, rate=rate)
    stream.layout = layout
    return stream


def _copy_audio(out: Any, stream: Any, clip: Clip) -> None:
    """Decode the source's audio for the seconds the frames cover and encode it for ``out`` (resampled as needed)."""
    av = require("av")
    t0, t1 = clip.span()
    resampler = av.AudioResampler(format=stream.format, layout=stream.layout, rate=stream.rate)
    with av.open(str(clip.source)) as inp:
        try:
            for frame in inp.decode(inp.streams.audio[0]):
                if frame.time is None or frame.time + frame.samples / frame.sample_rate <= t0:
                    continue
                if frame.time >= t1:
                    break
                frame.pts = None
                for r in resampler.resample(frame):
                    out.mux(stream.encode(r))
        except (av.error.FFmpegError, ValueError):
            pass  # corrupt audio: keep what decoded
    for r in resampler.resample(None):
        out.mux(stream.encode(r))
    out.mux(stream.encode(None))


def probe_video(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a written video holds: frames (decoded and counted), rate, size, audio: for tests and the bench."""
    av = require("av")
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return {"frames": n, "fps": Fraction(s.average_rate or 0), "size": (s.codec_context.width,
                s.codec_context.height), "audio": bool(c.streams.audio), "metadata": dict(c.metadata)}
