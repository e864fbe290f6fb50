"""Where a clip's stylised frames go as they finish, so that a stopped clip continues where it stopped.

A folder of PNGs: the output itself, or ``OUTPUT.frames/`` beside an output video (removed once the video is
written, unless kept). Each frame is written atomically (``frame_000000.png``, numbered from 0 like the clip's
frames, its recipe inside), and ``video.json`` holds the run's settings, each input frame's hash and each finished
frame's record. A rerun continues at the first frame not written when its settings and the hashes of the frames
written match; ``force`` starts again (removing only the files impasto wrote there). Flows are cached in ``.flow/``,
and each frame's engine image and Adam moments in ``.state/`` (so that a resumed clip continues exactly as an
uninterrupted one would: the PNGs are rounded to 8 bits, the moments are not in them at all).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import OutputError
from ..io.files import atomic_write, clean_stale_temps, os_reason
from ..io.recipe import save_image

MANIFEST = "video.json"
FRAME = re.compile(r"^frame_(\d{6,})\.png$")


class FrameStore:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.manifest: dict[str, Any] = {}

    @property
    def flow_dir(self) -> Path:
        return self.folder / ".flow"

    @property
    def state_dir(self) -> Path:
        return self.folder / ".state"

    def path(self, i: int) -> Path:
        return self.folder / f"frame_{i:06d}.png"

    def open(self, settings: dict[str, Any], hashes: list[str], *, force: bool) -> int:
        """Make the folder ready for this run; → the first frame still to stylise (0 for a new run).

        ``settings`` must equal a previous run's for its frames to be kept; ``hashes`` are the input frames'."""
        self.check()
        old = self._read_manifest()
        if force:
            self.clear()
            old = None
        elif old is None and any(FRAME.match(p.name) for p in self.folder.iterdir()):
            raise OutputError(f"{self.folder}: holds frame_*.png files but no {MANIFEST}; pass --force to replace "
                              "them or choose another output")
        done = 0
        if old is not None:
            if old.get("settings") != settings:
                raise OutputError(f"{self.folder}: was started with other settings ({_differences(old['settings'], settings)}); "
                                  "use the same settings to continue, or pass --force to start again")
            done = self._done(old, hashes)
        self.manifest = {"settings": settings, "inputs": hashes, "frames": (old or {}).get("frames", [])[:done],
                         "status": "running"}
        for key in ("seam", "passes"):  # a looped clip's seam, the passes after the first: how far they went
            if old is not None and done == len(hashes) and old.get(key):
                self.manifest[key] = old[key]
        self.write_manifest()
        return done

    def check(self) -> None:
        """Refuse, before any work, a folder that cannot be written (created if missing, its parent must exist)."""
        f = self.folder
        if f.exists() and not f.is_dir():
            raise OutputError(f"{f}: is a file; give a folder for PNG frames or a video file name (.mp4, .webm, ...)")
        if not f.parent.is_dir():
            raise OutputError(f"{f}: the folder {f.parent} does not exist; create it first")
        try:
            f.mkdir(exist_ok=True)
            probe = f / f".probe.{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise OutputError(f"{f}: cannot write in this folder ({os_reason(e)})") from None
        clean_stale_temps(f)

    def _read_manifest(self) -> dict[str, Any] | None:
        p = self.folder / MANIFEST
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            assert isinstance(data, dict) and "settings" in data
            return data
        except (OSError, ValueError, AssertionError):
            raise OutputError(f"{p}: is not a manifest impasto wrote (or it is damaged); pass --force to start "
                              "again") from None

    def _done(self, old: dict[str, Any], hashes: list[str]) -> int:
        """Frames already written: consecutive from 0, for input frames that are still the same."""
        done = 0
        old_hashes = old.get("inputs", [])
        while (done < len(hashes) and done < len(old_hashes) and old_hashes[done] == hashes[done]
               and self.path(done).exists()):
            done += 1
        return done

    def write_manifest(self) -> None:
        data = json.dumps(self.manifest, indent=1, sort_keys=True, default=str).encode()
        atomic_write(self.folder / MANIFEST, data, what="the video's manifest")

    def save(self, i: int, picture: Image.Image, recipe: dict[str, Any], record: dict[str, Any]) -> Path:
        """Write frame ``i`` (atomically), then its record in the manifest."""
        p = save_image(picture, self.path(i), recipe)
        self.manifest["frames"] = sorted([r for r in self.manifest["frames"] if r.get("frame") != i] + [record],
                                         key=lambda r: r.get("frame", 0))
        self.write_manifest()
        return p

    def save_state(self, i: int, state: dict[str, Any]) -> None:
        """Frame ``i``'s engine image and optimiser moments (tensors), for a resumed run."""
        import io

        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        self.state_dir.mkdir(exist_ok=True)
        atomic_write(self.state_dir / f"{i:06d}.pt", buf.getvalue(), what="the frame's state")

    def load_state(self, i: int) -> dict[str, Any] | None:
        """What ``save_state`` wrote for frame ``i``, or None (missing or damaged: the PNG is used instead)."""
        import torch

        p = self.state_dir / f"{i:06d}.pt"
        try:
            return torch.load(p, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]
        except (OSError, RuntimeError, ValueError, EOFError):
            return None

    def drop_state(self, keep: set[int]) -> None:
        """Remove the saved states of frames that are no longer needed."""
        if self.state_dir.is_dir():
            for p in self.state_dir.glob("*.pt"):
                if p.stem.isdigit() and int(p.stem) not in keep:
                    p.unlink(missing_ok=True)

    def load(self, i: int) -> Image.Image:
        with Image.open(self.path(i)) as im:
            return im.convert("RGB")

    def clear(self) -> None:
        """Remove what impasto wrote here (frames, manifest, flow cache); nothing else."""
        for p in self.folder.iterdir():
            if FRAME.match(p.name) or p.name == MANIFEST:
                p.unlink()
        shutil.rmtree(self.flow_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def remove(self) -> None:
        """Clear the folder and remove it when nothing else is left in it."""
        self.clear()
        try:
            self.folder.rmdir()
        except OSError:
            pass


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    out = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{k} {a.get(k)!r} (now {b.get(k)!r})" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{section} {a!r} (now {b!r})")
    return ", ".join(out[:4]) + (", ..." if len(out) > 4 else "")
