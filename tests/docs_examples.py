"""Run the docs' examples as a reader would: every ```sh and ```python block of a page, in order, in one folder.

The folder holds ``photo.jpg``, ``style.jpg`` and ``style2.jpg`` (tiny generated images), ``photos/`` (two more),
``clip.mp4`` (a short generated clip) and ``examples/report.toml``. Every run is made tiny where its config is made
(``StyleConfig``, ``VideoSettings``, the quality ``Meter``), so the blocks run exactly as written. ``impasto``
commands run in this process (no torch import per command); the set-up commands (a virtual environment, pip, the
test and docs runners) are .ci/run's own and are skipped; any other shell line runs in bash. ```text blocks are not
run: they are for what needs a network, a GPU, a cluster or minutes.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(sh|python)\n(.*?)^```", re.S | re.M)
SETUP = ("python3 -m venv", ". .venv/bin/activate", "pip install", "python -m pytest", "python -m sphinx",
         "python -m http.server")
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
from impasto_docs import GENERATED  # noqa: E402  (the reference pages the build writes: nothing to run there)

CAP = {"size": 32, "steps": 1, "tile_size": 64, "later_steps": 1, "frames": 8, "meter": 32}


def pages() -> list[Path]:
    """README.md and every Markdown page of docs/ (not the build's output, not the generated reference pages)."""
    docs = ROOT / "docs"
    skip = {docs / rel for rel in GENERATED}
    found = [p for p in sorted(docs.rglob("*.md")) if "_build" not in p.parts and "gallery" not in p.parts[-2:]]
    return [ROOT / "README.md", *[p for p in found if p not in skip]]


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """The page's runnable blocks: (language, code, line number)."""
    text = page.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def commands(code: str) -> Iterator[list[str]]:
    """A shell block's logical lines (continuations joined), each split into its ``&&``-chained commands' words."""
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        command: list[str] = []
        for w in [*words, "&&"]:
            if w == "&&":
                yield command
                command = []
            else:
                command.append(w)


def is_setup(words: list[str]) -> bool:
    return any(" ".join(words).startswith(s) for s in SETUP)


@contextlib.contextmanager
def tiny_runs() -> Iterator[None]:
    """Every StyleConfig, VideoSettings and Meter made meanwhile is capped to CAP (after its own validation, so what
    the page wrote is checked as written)."""
    from impasto import meter
    from impasto.config import StyleConfig
    from impasto.video.settings import VideoSettings

    def capped_config(self: StyleConfig) -> None:
        config_init(self)
        small = {"size": min(self.size, CAP["size"]), "steps": min(self.steps, CAP["steps"]),
                 "first_steps": None, "scale_steps": None, "start_size": None,  # one scale of one step
                 "tile_size": CAP["tile_size"] if self.tile_size else 0,
                 "shape": None if self.shape is None else tuple(min(s, CAP["size"]) for s in self.shape)}
        for name, value in small.items():
            object.__setattr__(self, name, value)

    def capped_video(self: VideoSettings) -> None:
        video_init(self)
        object.__setattr__(self, "later_steps", min(self.later_steps, CAP["later_steps"]))
        object.__setattr__(self, "frames", min(self.frames or CAP["frames"], CAP["frames"]))

    def capped_meter(self: meter.Meter, *args: object, **kwargs: object) -> None:
        kwargs["size"] = min(int(kwargs.get("size") or CAP["meter"]), CAP["meter"])  # type: ignore[call-overload]
        meter_init(self, *args, **kwargs)

    config_init, video_init, meter_init = StyleConfig.__post_init__, VideoSettings.__post_init__, meter.Meter.__init__
    StyleConfig.__post_init__ = capped_config  # type: ignore[method-assign]
    VideoSettings.__post_init__ = capped_video  # type: ignore[method-assign]
    meter.Meter.__init__ = capped_meter  # type: ignore[method-assign]
    try:
        yield
    finally:
        StyleConfig.__post_init__ = config_init  # type: ignore[method-assign]
        VideoSettings.__post_init__ = video_init  # type: ignore[method-assign]
        meter.Meter.__init__ = meter_init  # type: ignore[method-assign]


def make_folder(folder: Path) -> None:
    """The files every example may use: three images, a folder of photos, a clip, the study's experiment file."""
    import numpy as np

    from impasto.samples import sample_content, sample_style

    sample_content(64, 48, seed=1).save(folder / "photo.jpg")
    sample_style(48, 48, seed=2).save(folder / "style.jpg")
    r, g, b = sample_style(40, 56, seed=3).split()
    Image.merge("RGB", (b, g, r)).save(folder / "style2.jpg")  # the same strokes in warm colours
    (folder / "photos").mkdir()
    sample_content(56, 40, seed=4).save(folder / "photos" / "lake.jpg")
    sample_content(40, 56, seed=5).save(folder / "photos" / "hill.jpg")
    (folder / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "report.toml", folder / "examples" / "report.toml")
    scene = np.asarray(sample_content(200, 40, seed=6))
    write_clip(folder / "clip.mp4", [scene[:, i: i + 48] for i in range(0, 150, 1)][:130])


def write_clip(path: Path, frames: list, fps: int = 24) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def run_shell(words: list[str], folder: Path, where: str) -> None:
    from impasto.cli import main

    if words[0] == "impasto":
        try:
            code = main(words[1:])
        except SystemExit as e:  # --help
            code = e.code or 0
        assert code == 0, f"{where}: `{shlex.join(words)}` exited {code}"
        return
    raise AssertionError(f"{where}: `{shlex.join(words)}` is in an && chain with impasto: run it on its own line")


def run_page(page: Path, folder: Path) -> int:
    """Run every block of ``page`` in ``folder``; the number of blocks run."""
    rel = page.relative_to(ROOT)
    n = 0
    for lang, code, line in blocks(page):
        where = f"{rel}:{line}"
        n += 1
        if lang == "python":
            exec(compile(code, str(rel), "exec"), {"__name__": "__docs__"})
            continue
        for raw in code.replace("\\\n", " ").splitlines():
            chain = [c for c in commands(raw) if c]
            if not chain:
                continue
            runnable = [c for c in chain if not is_setup(c)]
            if any(c[0] == "impasto" for c in runnable) or not runnable:
                for c in runnable:
                    run_shell(c, folder, where)
            else:  # plain shell (printf > file, ls): bash runs the line as written
                done = subprocess.run(["bash", "-c", raw], cwd=folder, capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, f"{where}: `{raw}` exited {done.returncode}: {done.stderr}"
    return n

