"""impasto video's passes after the first (Ruder et al. 2018, section 3.4) and the later frames' early stop
(``later_tol``): one pass is today's clip to the bit, a second pass lowers the warping error and really runs
backward, the early stop stops where the start is converged and not where it is not, and an interrupted clip
resumes to the bit with either. Tiny clips (folders of PNG frames), a few steps."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")

from impasto.errors import ConfigError
from impasto.video import consistency, flow
from test_video import as_tensor, shifted_clip
from test_video_clips import TINY, H, W, folder, frames_of, two_shots


def warping_error(outputs: list[np.ndarray], inputs: list[np.ndarray]) -> float:
    """Lai et al.'s warping error of the outputs over consecutive pairs, with the inputs' DIS flows (t → t − 1)."""
    dis = flow.DISFlow()
    back = [dis(inputs[t], inputs[t - 1]) for t in range(1, len(inputs))]
    masks = [consistency.certainty(b, dis(inputs[t - 1], inputs[t])) for t, b in enumerate(back, 1)]
    return consistency.warping_error([as_tensor(o) for o in outputs], back, masks)


def run(tmp_path, name, frames, style_img, **settings):
    import impasto

    clip = tmp_path / f"{name}_in"
    if not clip.exists():
        folder(clip, frames)
    style_img.save(tmp_path / "style.png")
    result = impasto.stylize_video(clip, tmp_path / "style.png", tmp_path / name, **{**TINY, **settings})
    return result, frames_of(tmp_path / name)


def test_one_pass_is_the_clip_as_before(tmp_path, style_img):
    """passes = 1 (the default) runs nothing more: the frames of a clip with it spelt out are the default's to the
    bit, its records carry no pass, and its manifest's settings are those a clip started before passes existed has
    (so that such a clip continues)."""
    frames = shifted_clip(4, h=H, w=W)
    a, fa = run(tmp_path, "default", frames, style_img)
    b, fb = run(tmp_path, "one", frames, style_img, passes=1, pass_steps=7)
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    assert not any("pass_steps" in r for r in b.records)
    from impasto.video.settings import VideoSettings

    key = VideoSettings(passes=1, pass_steps=7).pixels_key()
    assert "passes" not in key and "pass_steps" not in key and "later_tol" not in key


def test_a_second_pass_lowers_the_warping_error(tmp_path, style_img):
    """On a panning texture, a backward pass after the forward one makes consecutive frames more consistent."""
    frames = shifted_clip(5, dx=3, dy=0, h=H, w=W)
    settings = dict(later_steps=6, pass_steps=6, temporal_weight=50.0)
    one, f1 = run(tmp_path, "one", frames, style_img, **settings)
    two, f2 = run(tmp_path, "two", frames, style_img, passes=2, **settings)
    assert [len(r.get("pass_steps", [])) for r in two.records] == [1, 1, 1, 1, 0]  # the last frame: the anchor
    e1, e2 = warping_error(f1, frames), warping_error(f2, frames)
    assert e2 < 0.9 * e1, (e1, e2)


def test_a_backward_pass_runs_backward(tmp_path, style_img):
    """Frame 0 of one pass cannot depend on the last frame; after a backward pass it does (and a third, forward,
    pass leaves frame 0 as the backward pass made it: it is that pass's anchor)."""
    frames = shifted_clip(4, h=H, w=W)
    other = [*frames[:-1], np.ascontiguousarray(frames[-1][::-1])]  # only the last frame differs
    _, a1 = run(tmp_path, "a1", frames, style_img)
    _, b1 = run(tmp_path, "b1", other, style_img)
    assert np.array_equal(a1[0], b1[0])
    _, a2 = run(tmp_path, "a2", frames, style_img, passes=2)
    _, b2 = run(tmp_path, "b2", other, style_img, passes=2)
    assert not np.array_equal(a2[0], b2[0])
    three, a3 = run(tmp_path, "a3", frames, style_img, passes=3)
    assert np.array_equal(a3[0], a2[0]) and not np.array_equal(a3[1], a2[1])
    assert [len(r.get("pass_steps", [])) for r in three.records] == [1, 2, 2, 1]


def test_passes_never_cross_a_cut(tmp_path, style_img):
    """Each shot's last frame anchors the backward pass, its first the forward one: with a cut at 3, frame 2 is
    kept by the backward pass, frame 3 by the forward one; and shot A's frames are the same whatever shot B is."""
    frames = two_shots(3, 3)
    other = [*frames[:3], *[np.ascontiguousarray(f[::-1]) for f in frames[3:]]]
    res, a = run(tmp_path, "a", frames, style_img, passes=3, cuts=(3,))
    _, b = run(tmp_path, "b", other, style_img, passes=3, cuts=(3,))
    assert [len(r.get("pass_steps", [])) for r in res.records] == [1, 2, 1, 1, 2, 1]
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))


def test_bad_passes_are_one_line(tmp_path, style_img, capsys):
    from impasto.cli import main
    from impasto.video.settings import VideoSettings

    for bad in (0, 1.5, "2"):
        with pytest.raises(ConfigError, match="passes = .* is invalid: give a whole number"):
            VideoSettings(passes=bad)
    with pytest.raises(ConfigError, match="use one or the other"):
        VideoSettings(passes=2, loop=True)
    clip = folder(tmp_path / "in", shifted_clip(3, h=H, w=W))
    style_img.save(tmp_path / "style.png")
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as e:
            main(["video", str(clip), str(tmp_path / "style.png"), "-o", str(tmp_path / "out"), "--passes", bad])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and "--passes" in err[0] and "whole number" in err[0], err


# -- the early stop ---------------------------------------------------------------------------------------------------
def test_the_early_stop_stops_a_converged_frame_and_not_an_unconverged_one(tmp_path, style_img):
    """A still clip whose first frame ran long: every later frame starts at its predecessor's converged result and
    stops early (the first at 21 steps of 40: as soon as a 20-step window is full). The same clip after a first frame of 2 steps: the later
    frames start far from converged, keep improving by more than the tolerance, and run all 40."""
    still = [shifted_clip(1, h=H, w=W)[0]] * 3
    settings = dict(later_steps=40, later_tol=0.002, start_size=None, tv_weight=0.0, padding="zeros")  # as measured
    converged, _ = run(tmp_path, "converged", still, style_img, steps=150, **settings)
    steps = [r["steps"] for r in converged.records[1:]]
    assert steps[0] == 21 and all(s < 40 for s in steps), steps  # 21: the first step after a full window
    fresh, _ = run(tmp_path, "fresh", still, style_img, steps=2, **settings)
    assert [r["steps"] for r in fresh.records[1:]] == [40, 40]


# -- resuming ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["pass 1", "pass 2", "pass 3"])
def test_an_interrupted_clip_with_passes_and_early_stops_resumes_to_the_bit(tmp_path, style_img, where):
    """Stopped during the first pass, the backward pass or the forward one after it, then run again: every frame is
    the uninterrupted run's, to the bit (each frame's image and Adam's moments are saved as the passes go)."""
    import impasto
    from impasto.api import StopToken

    clip = folder(tmp_path / "in", shifted_clip(5, h=H, w=W))
    style_img.save(tmp_path / "style.png")
    settings = {**TINY, "later_steps": 24, "later_tol": 0.02, "passes": 3, "pass_steps": 3}
    whole = impasto.stylize_video(clip, tmp_path / "style.png", tmp_path / "whole", **settings)
    stop, runs = StopToken(), []  # the frames in the order they ran: 0 1 2 3 4 | 3 2 1 0 | 1 2 3 4
    at = {"pass 1": 3, "pass 2": 6, "pass 3": 10}[where]  # frame 3 of pass 1, frame 2 of pass 2 and of pass 3

    def on_step(step):
        if not runs or runs[-1] != step.frame:
            runs.append(step.frame)
        if len(runs) == at + 1:
            stop.stop("stopped by the test")

    first = impasto.stylize_video(clip, tmp_path / "style.png", tmp_path / "resumed", callback=on_step, stop=stop,
                                  **settings)
    assert first.status == "cancelled"
    again = impasto.stylize_video(clip, tmp_path / "style.png", tmp_path / "resumed", **settings)
    assert again.status == "done"
    for a, b in zip(frames_of(tmp_path / "whole"), frames_of(tmp_path / "resumed"), strict=True):
        assert np.array_equal(a, b)
    assert [r["losses"] for r in whole.records] == [r["losses"] for r in again.records]
    assert [r.get("pass_steps") for r in whole.records] == [r.get("pass_steps") for r in again.records]
