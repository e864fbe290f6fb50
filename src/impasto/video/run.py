"""The frame loop of one clip (Ruder, Dosovitskiy & Brox 2016), what ``loop.stylize_video`` runs.

Frame 0, and the first frame of every later shot (video/cuts.py), runs the config's full coarse-to-fine schedule
from the content, with no temporal term: nothing of the shot before reaches across a cut. Each other frame t starts
from frame t − 1's output warped onto it by the optical flow (t → t − 1), its disoccluded pixels (mask 0) taken from
the content, with Adam's moments carried; it runs ``later_steps`` steps at the final scale only, with the temporal
term comparing it with the outputs of the frames ``long_term`` back within its shot, warped the same way, each under
its closest-first certainty mask.

``loop``: the last SEAM frames take the first frame's output, warped onto them (flow t → 0), as one more temporal
target and into their first image, with a weight w rising to 1 at the last frame (the earlier frames' targets
weighted 1 − w), so that the change is spread over SEAM pairs rather than made in one; then a second pass redoes the first SEAM frames,
each from its own result and moments, against both neighbours (the last frame before frame 0): the seam is then a
pair like the others (a departure: Ruder et al. do not loop clips; the blended first image is their multi-pass
initialisation, section 3.4).

``passes`` (Ruder, Dosovitskiy & Brox 2018, section 3.4): after the first pass, alternately a backward and a forward
pass over each shot. Frame t starts from (x_t + c·w(x_n)) / (1 + c), its last result x_t blended with its
neighbour n's (t + 1 backward, t − 1 forward) result of this pass warped onto it, c the flow's certainty (n → t)
(their δ = 1 for the neighbour in the pass's direction, 0 for the other, as their code's defaults), runs
``pass_steps`` with the temporal term against that neighbour alone, Adam's moments carried from that neighbour's
last run. Each shot's first frame in a pass's direction has no neighbour to blend with: it is kept (Ruder et al.
rerun it without a temporal term, which only moves it toward its own frame-by-frame result).

``later_tol``: a later frame stops once its loss improved by less than this fraction over 20 steps (the config's
``tol``, on the later frames alone).

``style_keyframes``: each frame's ``style_blend`` is its keyframes' linear blend (video/keyframes.py).

Each written frame's engine image and Adam moments go to the store (``.state/``) for the frames that are still
needed, so a resumed clip continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from .. import __version__
from ..api import FrameRunner, Step, StopToken
from ..config import StyleConfig
from ..estimate import duration
from ..progress import announce
from .bar import ClipProgress
from .consistency import certainty, closest_first, warp
from .container import Clip
from .cuts import shot_of, shot_starts
from .flow import FlowCache
from .keyframes import blend_at
from .masks import MovingMasks
from .settings import VideoSettings
from .store import FrameStore

# Frames on each side of a loop's seam: the last SEAM frames are pulled toward the first frame's result (a ramp, so
# that the pull does not itself make a jump between frames n − SEAM − 1 and n − SEAM), the first SEAM are redone.
SEAM = 3


class VideoRun:
    def __init__(self, clip: Clip, runner: FrameRunner, store: FrameStore, flows: FlowCache, cfg: StyleConfig,
                 vs: VideoSettings, cuts: tuple[int, ...], callback: Callable[[Step], None] | None,
                 stop: StopToken | None, progress: bool, masks: MovingMasks | None = None) -> None:
        self.clip, self.runner, self.store, self.flows, self.cfg, self.vs = clip, runner, store, flows, cfg, vs
        self.callback, self.stop, self.progress, self.masks = callback, stop, progress, masks
        self.n = len(clip.frames)
        self.cuts, self.starts = cuts, shot_starts(cuts)
        self.warm = vs.frame_init == "warped"
        self.later = cfg.replace(start_size=None, steps=vs.later_steps, first_steps=None, scale_steps=None,
                                 tol=cfg.tol if vs.later_tol is None else vs.later_tol) if self.warm else cfg
        # the first shot's first frames (a cut among them ends the seam there)
        self.seam_frames = [t for t in range(min(SEAM, self.n - 1)) if not any(0 < c <= t for c in cuts)] \
            if vs.loop else []
        self.outputs: dict[int, torch.Tensor] = {}  # frame → the engine's output, for the frames still needed
        self.moments: dict | None = None  # the previous frame's Adam moments
        self.prev = -1  # the frame run last (whose moments those are)
        self.bar: Any = None
        self.phase = ""

    # -- what a frame is compared with --------------------------------------------------------------------------
    def shot_start(self, t: int) -> int:
        return max(s for s in self.starts if s <= t)

    def config_at(self, cfg: StyleConfig, t: int) -> StyleConfig:
        kf = self.vs.style_keyframes
        return cfg.replace(style_blend=blend_at(kf, t)) if kf else cfg

    def pair(self, t: int, s: int, weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame s's output warped onto frame t, and its certainty mask (× ``weight``)."""
        back, fwd = self.flows(t, s), self.flows(s, t)
        return warp(self.outputs[s], back), certainty(back, fwd).to(self.runner.device) * weight

    def earlier(self, t: int) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor | None]:
        """The temporal term's pairs for frame t (each earlier output of its shot warped onto t, its closest-first
        mask) and the mask of the closest one as it is (for the first image)."""
        warped, masks = [], []
        for j in self.vs.long_term:
            s = t - j
            if s < self.shot_start(t):
                break
            w, m = self.pair(t, s)
            warped.append(w)
            masks.append(m)
        return list(zip(warped, closest_first(masks))), (masks[0] if masks else None)

    def seam_weight(self, t: int) -> float:
        """With ``loop``: how much the last SEAM frames take of the first frame's output, 1/(SEAM − k + 1) for the
        k-th of them (1/3, 1/2, 1): blended with the frame before at each step, this makes the k-th frame k/SEAM of
        the way from where the clip would have gone to the first frame, so the seam's jump is cut in SEAM equal
        parts. 0 elsewhere."""
        k = len(self.seam_frames)
        if not k or t < self.n - k or t in self.seam_frames or any(t < c for c in self.cuts):
            return 0.0  # (nor the frames before a cut in the last shot: the seam reaches them through it)
        return 1 / (self.n - t)

    @staticmethod
    def blend(init: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The first image moved toward each (target, weighted mask): init · (1 − m) + target · m."""
        for target, m in pairs:
            init = init * (1 - m) + target * m
        return init

    def masks_at(self, t: int) -> Any:
        """Frame t's masks, carried along the flow or from folders (None: the first frame's, for every frame)."""
        return self.runner.frame_masks(self.masks.at(t)) if self.masks is not None else None

    # -- one frame ----------------------------------------------------------------------------------------------
    def frame(self, t: int) -> Any:
        picture = Image.fromarray(self.clip.frames[t])
        cfg = self.config_at(self.cfg, t)
        if t in self.starts or not self.warm and self.cfg.temporal_weight == 0:
            return self.runner.run(picture, cfg, index=t, callback=self.on_step, stop=self.stop,
                                   masks=self.masks_at(t))
        pairs, first_mask = self.earlier(t)
        w = self.seam_weight(t)
        seam = [self.pair(t, 0, w)] if w else []
        pairs = [(x, m * (1 - w)) for x, m in pairs] + seam
        init = None
        if self.warm:
            content = self.runner.content(picture)[0]
            init = self.blend(pairs[0][0] * first_mask + content * (1 - first_mask), seam)  # disoccluded: content
        return self.runner.run(picture, self.config_at(self.later, t) if self.warm else cfg, init=init,
                               moments=self.moments if self.warm else None,
                               temporal=pairs if self.cfg.temporal_weight > 0 else (), index=t,
                               callback=self.on_step, stop=self.stop, masks=self.masks_at(t))

    def label(self, t: int) -> str:
        shots = f" · shot {shot_of(t, self.cuts) + 1}/{len(self.starts)}" if self.cuts else ""
        cut = " (cut: starts afresh)" if t in self.cuts else ""
        return f"frame {t + 1}/{self.n}{shots}{cut}{self.phase}"

    def on_step(self, step: Step) -> None:
        left = None
        if self.bar is not None:
            if self.phase:  # the seam pass is beyond the plan the time left was made from
                self.bar.note(step)
            else:
                left = self.bar.update(step)
        if self.callback is not None:
            self.callback(dataclasses.replace(step, eta=left) if left is not None else step)

    def estimate(self, done: int) -> tuple[float, Callable[[int], tuple[list[int], list[float], list[float]]], bool]:
        """(the seconds frames ``done`` … the last will take here, each frame's plan for the ETA, whether the machine
        is calibrated). A shot's first frame runs the full schedule; later frames build no style targets (the clip's
        are kept), so their start costs nothing predicted: what happens between frames is measured as the clip goes."""
        first, later = self.runner.forecast(self.cfg), self.runner.forecast(self.later)

        def plan(t: int) -> tuple[list[int], list[float], list[float]]:
            full = t in self.starts or not self.warm
            e = (first if full else later).estimate
            return list(e.steps), list(e.step_seconds), list(e.setup_seconds) if t == 0 else [0.0] * len(e.steps)

        seconds = sum(sum(n * s + u for n, s, u in zip(*plan(t))) for t in range(done, self.n))
        return seconds, plan, first.calibration is not None

    # -- state kept for a resumed run ---------------------------------------------------------------------------
    def needed(self, t: int) -> set[int]:
        """The frames whose outputs are still needed once frame t is done."""
        if self.vs.passes > 1:  # the passes after the first start every frame from its last result
            return set(range(t + 1))
        # every frame a later one reaches back to (with long_term 1,2,4 frame t+2 needs t-2 too, not only t+1-j)
        return set(range(max(0, t + 1 - max(self.vs.long_term)), t + 1)) | set(range(len(self.seam_frames) + 1)) \
            | ({self.n - 1} if self.seam_frames and t == self.n - 1 else set())

    # -- passes after the first ------------------------------------------------------------------------------------
    def order(self, p: int) -> list[int]:
        """Pass p's (2, 3, …) frames in the order it runs them: backward on even passes, forward on odd ones, each
        shot's first frame in the pass's direction left out (it has no neighbour to be blended with)."""
        if p % 2 == 0:
            return [t for t in range(self.n - 2, -1, -1) if t + 1 not in self.starts]
        return [t for t in range(1, self.n) if t not in self.starts]

    def passes(self, first: int, index: int) -> tuple[str, str]:
        """Passes ``first`` … ``passes``, pass ``first`` from its ``index``-th frame; each frame is written (and its
        state saved) as it finishes, the manifest saying where the passes are."""
        cfg = self.cfg.replace(start_size=None, steps=self.vs.pass_steps, first_steps=None, scale_steps=None,
                               tol=self.later.tol)
        for p in range(first, self.vs.passes + 1):
            way = "backward" if p % 2 == 0 else "forward"
            self.phase = f" · pass {p}/{self.vs.passes} ({way})"
            order = self.order(p)
            for k in range(index if p == first else 0, len(order)):
                t = order[k]
                nb = t + 1 if p % 2 == 0 else t - 1
                if nb != self.prev:  # a shot's first frame in this pass: the moments of its anchor, not the shot's
                    saved = self.store.load_state(nb)  # before (nothing reaches across a cut)
                    self.moments = saved.get("moments") if saved is not None else None
                warped, c = self.pair(t, nb)
                init = self.blend(self.outputs[t], [(warped, c / (1 + c))])  # (x_t + c·w(x_n)) / (1 + c)
                picture = Image.fromarray(self.clip.frames[t])
                out = self.runner.run(picture, self.config_at(cfg, t), init=init, moments=self.moments,
                                      temporal=[(warped, c)] if self.cfg.temporal_weight > 0 else (), index=t,
                                      callback=self.on_step, stop=self.stop, masks=self.masks_at(t))
                if out.status == "cancelled":
                    return "cancelled", f"{out.message}; all frames are written, pass {p} of {self.vs.passes} " \
                        f"stopped at frame {t}"
                self.outputs[t], self.moments, self.prev = out.image, out.moments, t
                self.store.save_state(t, {"image": out.image.cpu(), "moments": out.moments})
                old = next((r for r in self.store.manifest["frames"] if r.get("frame") == t), {})
                rec = {**old, "pass_steps": [*old.get("pass_steps", []), len(out.history)],
                       "losses": self.record(t, out)["losses"]}
                self.store.manifest["passes"] = {"pass": p, "next": k + 1}
                self.store.save(t, out.picture, {**self.recipe(), "frame": t, "frame_record": rec}, rec)
                if self.bar is not None:
                    self.bar.note(add=1)
        self.store.manifest["passes"] = "done"
        self.store.write_manifest()
        return "done", ""

    def passes_left(self) -> tuple[int, int, int]:
        """(the pass to continue, its frame to continue at, frames left in the passes), from the manifest."""
        where = self.store.manifest.get("passes")
        if self.vs.passes == 1 or where == "done":
            return self.vs.passes + 1, 0, 0
        p, k = (where["pass"], where["next"]) if isinstance(where, dict) else (2, 0)
        return p, k, sum(len(self.order(q)) for q in range(p, self.vs.passes + 1)) - k

    def resume_from(self, done: int) -> None:
        for s in sorted(self.needed(done - 1)) if done else []:
            if s < done:
                saved = self.store.load_state(s)
                self.outputs[s] = saved["image"].to(self.runner.device) if saved is not None else \
                    self.runner.engine_image(self.store.load(s))
        p, k, _ = self.passes_left()
        last = done - 1  # the frame whose moments the next one carries: the last one run
        if p <= self.vs.passes and (k or p > 2):
            last = self.order(p)[k - 1] if k else self.order(p - 1)[-1]
        saved = self.store.load_state(last) if done else None
        self.moments = saved.get("moments") if saved is not None else None
        self.prev = last

    def record(self, t: int, out: Any) -> dict[str, Any]:
        last = {k: v for k, v in (out.history[-1] if out.history else {}).items() if k not in ("step", "scale", "time")}
        rec = {"frame": t, "steps": len(out.history), "seconds": round(out.elapsed, 3),
               "cpu_seconds": round(out.cpu, 3), "status": out.status, "losses": last,
               "shot": shot_of(t, self.cuts), "cut": t in self.cuts}
        if self.vs.style_keyframes:
            rec["style_blend"] = [round(w, 6) for w in blend_at(self.vs.style_keyframes, t)]
        return rec

    # -- the passes ---------------------------------------------------------------------------------------------
    def run(self, done: int) -> tuple[str, str, int]:
        """Stylise frames ``done`` … the last, then (``loop``) the seam; → (status, message, frames stylised)."""
        n = self.n
        self.resume_from(done)
        seam_todo = bool(self.seam_frames) and self.store.manifest.get("seam") != "done"
        first_pass, index, pass_frames = self.passes_left()
        seconds, plan, calibrated = self.estimate(done)
        if self.progress:  # the first line: what it will take here
            announce(f"impasto: {n - done} frames at {self.runner.size[1]}x{self.runner.size[0]}: "
                     + (f"{duration(seconds)} here" if calibrated else "not timed (impasto doctor measures this "
                                                                         "machine)"))
        self.bar = ClipProgress(n, done, plan, calibrated=calibrated, bar=self.progress, label=self.label,
                                extra=(len(self.seam_frames) if seam_todo else 0) + pass_frames)
        ran = 0
        try:
            for t in range(done, n):
                out = self.frame(t)
                if out.status == "cancelled":
                    return "cancelled", f"{out.message}; frames 0-{t - 1} are written" if t else out.message, ran
                rec = self.record(t, out)
                self.store.save(t, out.picture, {**self.recipe(), "frame": t, "frame_record": rec}, rec)
                self.store.save_state(t, {"image": out.image.cpu(), "moments": out.moments})
                ran += 1
                self.outputs[t] = out.image
                self.moments, self.prev = out.moments, t
                keep = self.needed(t)
                self.outputs = {s: v for s, v in self.outputs.items() if s in keep}
                self.store.drop_state(keep)
                self.bar.frame_done(t, rec["losses"])
            if seam_todo:
                status, message = self.seam()
                if status != "done":
                    return status, message, ran
            if pass_frames:
                status, message = self.passes(first_pass, index)
                if status != "done":
                    return status, message, ran
        finally:
            self.bar.close()
        return "done", "", ran

    def seam(self) -> tuple[str, str]:
        """The loop's second pass: the first SEAM frames redone against both neighbours (the frame before frame 0
        is the last). Written together at the end, so that a stop leaves the first pass's frames as they were."""
        self.phase = " · loop seam"
        redone: dict[int, tuple[Any, dict[str, Any]]] = {}
        for t in self.seam_frames:
            saved = self.store.load_state(t)
            before = self.pair(t, (t - 1) % self.n)
            pairs = [before] + ([self.pair(t, t + 1)] if t + 1 not in self.cuts else [])
            init = self.blend(self.outputs[t], [(before[0], before[1] * 0.5)])  # halfway to the frame before
            out = self.runner.run(Image.fromarray(self.clip.frames[t]), self.config_at(self.later, t),
                                  init=init, moments=saved.get("moments") if saved else None,
                                  temporal=pairs if self.cfg.temporal_weight > 0 else (), index=t,
                                  callback=self.on_step, stop=self.stop, masks=self.masks_at(t))
            if out.status == "cancelled":
                return "cancelled", f"{out.message}; all frames are written, the loop's seam is not smoothed yet"
            self.outputs[t] = out.image
            old = next((r for r in self.store.manifest["frames"] if r.get("frame") == t), {})
            redone[t] = (out, {**old, "seam_steps": len(out.history), "seam_seconds": round(out.elapsed, 3),
                               "losses": self.record(t, out)["losses"]})
            if self.bar is not None:
                self.bar.note(add=1)
        for t, (out, rec) in redone.items():
            self.store.save(t, out.picture, {**self.recipe(), "frame": t, "frame_record": rec}, rec)
        self.store.manifest["seam"] = "done"
        self.store.write_manifest()
        return "done", ""

    def recipe(self) -> dict[str, Any]:
        return {"impasto": __version__, "kind": "video", "input": str(self.clip.source), "start": self.clip.start,
                "styles": self.runner.names["styles"], "config": self.cfg.to_dict(), "video": self.vs.to_dict(),
                "cuts": list(self.cuts), "fps": str(self.clip.fps), "device": str(self.runner.device)}
