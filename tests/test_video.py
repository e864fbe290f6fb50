"""impasto video on tiny generated clips: a textured pattern shifted by known amounts, so that the true flow is
known. Flow providers, masks, warping and the warping error against it; the command end to end (a 6-frame 48 px
clip), resumed after an interruption; the one-line errors for bad input."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

pytest.importorskip("av")
pytest.importorskip("cv2")

from impasto.video import consistency, container, flow

H, W = 48, 64


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random texture with structure at several scales (what optical flow can lock on to), uint8 RGB."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for cells in (4, 8, 16):
        small = rng.random((cells, cells * w // h + 1, 3)).astype(np.float32)
        t = torch.from_numpy(small).permute(2, 0, 1)[None]
        out += torch.nn.functional.interpolate(t, size=(h, w), mode="bicubic", align_corners=False)[0].permute(
            1, 2, 0).numpy() / 3
    return (out.clip(0, 1) * 255).astype(np.uint8)


def shifted_clip(n: int = 6, dx: int = 2, dy: int = 1, h: int = H, w: int = W, seed: int = 0) -> list[np.ndarray]:
    """n crops of one large texture, the window moving by (dx, dy) px a frame: content moves by (−dx, −dy)."""
    big = texture(h + abs(dy) * n + 8, w + abs(dx) * n + 8, seed)
    return [big[4 + i * dy:4 + i * dy + h, 4 + i * dx:4 + i * dx + w].copy() for i in range(n)]


def as_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255


def true_flow(dx: float, dy: float, h: int = H, w: int = W) -> np.ndarray:
    """The flow from frame t to frame t+1 of ``shifted_clip``: every point moves by (−dx, −dy)."""
    return np.broadcast_to(np.array([-dx, -dy], np.float32), (h, w, 2)).copy()


@pytest.mark.parametrize("name", ["dis", "farneback"])
def test_the_flow_provider_recovers_a_known_shift(name):
    frames = shifted_clip(2, dx=3, dy=2)
    est = flow.provider(name)(frames[0], frames[1])
    assert est.shape == (H, W, 2) and est.dtype == np.float32
    interior = est[8:-8, 8:-8]
    assert np.abs(np.median(interior[..., 0]) + 3) < 0.25 and np.abs(np.median(interior[..., 1]) + 2) < 0.25
    assert np.mean(np.linalg.norm(interior - true_flow(3, 2)[8:-8, 8:-8], axis=-1)) < 0.5


def test_the_flow_cache_computes_each_pair_once(tmp_path):
    frames = shifted_clip(3)
    cache = flow.FlowCache(frames, flow.provider("dis"), tmp_path)
    a = cache(1, 0)
    assert cache.computed == 1 and len(list(tmp_path.glob("dis-*.npy"))) == 1
    again = flow.FlowCache(frames, flow.provider("dis"), tmp_path)
    assert np.allclose(again(1, 0), a, atol=0.05) and again.computed == 0


def test_the_warp_by_the_true_flow_matches_the_next_frame():
    frames = shifted_clip(2, dx=2, dy=1)
    # Frame 0 carried onto frame 1's grid with the flow 1 → 0 (points of frame 1 are at +(dx, dy) in frame 0).
    warped = consistency.warp(as_tensor(frames[0]), true_flow(-2, -1))
    inner = (slice(None), slice(None), slice(2, -2), slice(3, -3))
    assert float((warped - as_tensor(frames[1]))[inner].abs().max()) < 1.5 / 255
    # Sub-pixel: half a pixel of motion is bilinear interpolation between neighbours.
    half = consistency.warp(as_tensor(frames[0]), np.full((H, W, 2), [0.5, 0.0], np.float32))
    t = as_tensor(frames[0])
    assert torch.allclose(half[..., :-1], (t[..., :-1] + t[..., 1:]) / 2, atol=1e-5)


def test_the_mask_clears_pixels_that_leave_the_frame():
    dx, dy = 3, 2
    back = true_flow(-dx, -dy)  # frame 1 → frame 0
    fwd = true_flow(dx, dy)  # frame 0 → frame 1
    mask = consistency.certainty(back, fwd)[0, 0]
    # Frame 1's last dx columns and dy rows came from outside frame 0: no earlier pixel to keep.
    assert float(mask[:, W - dx + 1:].max()) == 0 and float(mask[H - dy + 1:, :].max()) == 0
    assert float(mask[: H - dy - 1, : W - dx - 1].min()) == 1
    # Flows that disagree (an occlusion) are uncertain; a sharp motion edge is a motion boundary.
    wrong = consistency.certainty(back, true_flow(-dx, -dy))[0, 0]
    assert float(wrong[10:-10, 10:-10].max()) == 0
    edge = np.zeros((H, W, 2), np.float32)
    edge[:, W // 2:, 0] = 4.0
    edge_back = np.zeros((H, W, 2), np.float32)
    edge_back[:, W // 2 + 4:, 0] = -4.0
    m = consistency.certainty(edge, edge_back)[0, 0]
    assert float(m[:, W // 2 - 1:W // 2 + 1].max()) == 0 and float(m[:, 4:W // 2 - 4].min()) == 1


def test_long_term_masks_are_closest_first():
    a = torch.tensor([[1.0, 1.0, 0.0, 0.0]])[None, None]
    b = torch.tensor([[1.0, 0.0, 1.0, 0.0]])[None, None]
    c = torch.tensor([[1.0, 1.0, 1.0, 1.0]])[None, None]
    out = consistency.closest_first([a, b, c])
    assert out[0].flatten().tolist() == [1, 1, 0, 0]
    assert out[1].flatten().tolist() == [0, 0, 1, 0]
    assert out[2].flatten().tolist() == [0, 0, 0, 1]


def test_the_warping_error_is_near_zero_for_a_consistent_clip_and_large_for_a_flickering_one():
    frames = shifted_clip(5, dx=2, dy=1)
    flows = [true_flow(-2, -1)] * 4
    masks = [consistency.certainty(true_flow(-2, -1), true_flow(2, 1))] * 4
    consistent = consistency.warping_error([as_tensor(f) for f in frames], flows, masks)
    rng = np.random.default_rng(1)
    flicker = [as_tensor(f) * (0.8 + 0.4 * rng.random()) + 0.05 * torch.from_numpy(rng.standard_normal(
        (1, 3, H, W))).float() for f in frames]
    flickering = consistency.warping_error(flicker, flows, masks)
    assert consistent < 1e-4 and flickering > 100 * consistent and flickering > 5e-3


# -- containers ---------------------------------------------------------------------------------------------------------
def write_clip(path, frames, fps=12, audio=False):
    """A test clip written with PyAV (and a 440 Hz tone when ``audio``)."""
    import av

    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264" if path.suffix != ".webm" else "libvpx-vp9", rate=Fraction(fps))
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        a = out.add_stream("aac", rate=44100) if audio else None
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            n = 44100 * len(frames) // fps
            tone = np.sin(np.arange(n) / 44100 * 2 * np.pi * 440).astype(np.float32)[None].repeat(2, 0)
            af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
            af.sample_rate = 44100
            out.mux(a.encode(af))
            out.mux(a.encode(None))


def test_read_clip_from_a_video_a_gif_and_a_folder(tmp_path):
    frames = shifted_clip(6)
    write_clip(tmp_path / "c.mp4", frames, fps=12, audio=True)
    clip = container.read_clip(tmp_path / "c.mp4", start=1, count=4, fit=lambda h, w: (h // 2, w // 2))
    assert len(clip.frames) == 4 and clip.size == (H // 2, W // 2) and clip.fps == 12 and clip.audio
    assert clip.span() == pytest.approx((1 / 12, 5 / 12))
    from PIL import Image

    gif = [Image.fromarray(f) for f in frames]
    gif[0].save(tmp_path / "c.gif", save_all=True, append_images=gif[1:], duration=100, loop=0)
    g = container.read_clip(tmp_path / "c.gif")
    assert len(g.frames) == 6 and g.fps == 10 and not g.audio
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"f{i + 1}.png")  # natural order: f10 after f9
    d = container.read_clip(folder, fps=Fraction(8))
    assert len(d.frames) == 6 and d.fps == 8 and np.array_equal(d.frames[2], frames[2])


def test_write_video_keeps_rate_count_and_audio(tmp_path):
    frames = shifted_clip(6, h=36, w=45)  # odd width: padded to even for 4:2:0
    write_clip(tmp_path / "in.mp4", shifted_clip(6, h=36, w=46), fps=12, audio=True)
    src = container.read_clip(tmp_path / "in.mp4")
    from PIL import Image

    makers = [lambda f=f: Image.fromarray(f) for f in frames]
    for ext in (".mp4", ".webm", ".gif"):
        out = tmp_path / f"out{ext}"
        notes = container.write_video(out, makers, Fraction(12), audio_from=src, comment="recipe")
        info = container.probe_video(out)
        assert info["frames"] == 6 and abs(float(info["fps"]) - 12) < 0.6, (ext, info)
        assert info["audio"] == (ext != ".gif"), ext
        assert any("padded" in n for n in notes) == (ext != ".gif")
    assert not list(tmp_path.glob(".*.part"))


def test_a_stream_that_breaks_part_way_gives_the_frames_before_it(tmp_path):
    import av

    frames = shifted_clip(20, h=36, w=48)
    path = tmp_path / "whole.mkv"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=Fraction(12))
        v.width, v.height, v.pix_fmt = 48, 36, "yuv420p"
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    clip = container.read_clip(cut)
    assert 2 <= len(clip.frames) < 20
    assert len(clip.notes) == 1 and f"ends at frame {len(clip.frames) - 1}" in clip.notes[0]
    assert container.read_clip(path).notes == []


# -- the temporal term ----------------------------------------------------------------------------------------------
def test_the_temporal_term_is_the_masked_mean_squared_difference_and_idle_on_a_still():
    from impasto.config import StyleConfig
    from impasto.core.terms import TemporalTerm, TermContext

    cfg = StyleConfig(temporal_weight=7.0)
    assert TemporalTerm.weight(cfg) == 7.0
    img = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    targets = [torch.rand(1, 3, 8, 8, dtype=torch.float64) for _ in range(2)]
    masks = [(torch.rand(1, 1, 8, 8) > 0.5).double() for _ in range(2)]
    ctx = TermContext(cfgs=[cfg, cfg], content_features=None, style_stats=None, regions=[], region_guides=[],
                      content_guide=None, extra={"temporal": list(zip(targets, masks))})
    term = TemporalTerm.build(ctx, torch.device("cpu"))
    value = term({}, img)
    x = img.detach()
    oracle = [sum(float((masks[k] * (x[i] - targets[k][0]) ** 2).sum()) / (3 * 64) for k in range(2)) for i in range(2)]
    assert value.shape == (2,) and torch.allclose(value.double(), torch.tensor(oracle, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda t: term({}, t), (img,))  # float64 all the way
    # Half the size: the targets and masks are carried to the scale (area means).
    assert term({}, torch.rand(1, 3, 4, 4)).shape == (1,)
    assert TemporalTerm.build(TermContext([cfg], None, None, [], [], None), torch.device("cpu")).idle


def test_a_still_image_reports_the_temporal_term_as_zero(content_img, style_img):
    import impasto

    result = impasto.stylize(content_img, style_img, size=32, start_size=None, steps=2, progress=False)
    assert [row["temporal"] for row in result.history] == [0.0, 0.0]


# -- the command and the loop -----------------------------------------------------------------------------------------
TINY = ["--size", "48", "--start-size", "32", "--steps", "3", "--later-steps", "2", "-q"]


@pytest.fixture
def clip_files(tmp_path, style_img):
    write_clip(tmp_path / "in.mp4", shifted_clip(6, h=36, w=48), fps=12, audio=True)
    style_img.save(tmp_path / "style.png")
    return tmp_path / "in.mp4", tmp_path / "style.png"


def test_impasto_video_writes_a_playable_clip_with_the_frames_rate_audio_and_recipe(clip_files, tmp_path, capsys):
    import json

    from impasto.cli import main

    clip, style = clip_files
    out = tmp_path / "out.mp4"
    # with its bar (no -q): the estimate is its first line
    assert main(["video", str(clip), str(style), "-o", str(out), *TINY[:-1], "--long-term", "1,2"]) == 0
    info = container.probe_video(out)
    assert info["frames"] == 6 and info["fps"] == 12 and info["audio"] and info["size"] == (48, 36)
    recipe = json.loads((tmp_path / "out.mp4.json").read_text())
    assert recipe["video"]["long_term"] == [1, 2] and recipe["config"]["size"] == 48
    assert [r["frame"] for r in recipe["frames"]] == list(range(6))
    assert recipe["frames"][0]["steps"] == 3 * 2 + 3 and all(r["steps"] == 2 for r in recipe["frames"][1:])
    assert recipe["frames"][-1]["losses"]["temporal"] > 0
    assert "impasto" in info["metadata"].get("comment", "")
    assert not (tmp_path / "out.mp4.frames").exists()  # the PNG frames are removed once the video is written
    err = capsys.readouterr().err
    assert "wrote" in err
    assert err.startswith("impasto: 6 frames at 48x36: about ") and " here\n" in err  # the estimate comes first
    assert main(["video", str(clip), str(style), "-o", str(out), *TINY]) == 2  # exists: --force to overwrite


def test_a_stopped_clip_continues_at_the_first_missing_frame(clip_files, tmp_path):
    import impasto
    from impasto.api import StopToken

    clip, style = clip_files
    out = tmp_path / "frames"
    settings = dict(size=48, start_size=32, steps=3, later_steps=2, progress=False)
    stop, seen = StopToken(), []

    def on_step(step):
        seen.append(step.frame)
        if step.frame == 3:
            stop.stop("stopped by the test")

    first = impasto.stylize_video(clip, style, out, callback=on_step, stop=stop, **settings)
    assert first.status == "cancelled" and first.frames == 3 and first.ran == 3
    assert sorted(p.name for p in out.glob("frame_*.png")) == [f"frame_{i:06d}.png" for i in range(3)]
    assert sorted(set(seen)) == [0, 1, 2, 3]
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")}
    seen.clear()
    again = impasto.stylize_video(clip, style, out, callback=lambda s: seen.append(s.frame), **settings)
    assert again.status == "done" and again.ran == 3 and again.frames == 6 and sorted(set(seen)) == [3, 4, 5]
    assert all(p.stat().st_mtime_ns == written[p.name] for p in out.glob("frame_*.png") if p.name in written)
    assert len(again.records) == 6 and (out / "video.json").exists()
    with pytest.raises(impasto.OutputError, match="other settings"):
        impasto.stylize_video(clip, style, out, **{**settings, "steps": 4})


@pytest.mark.parametrize("case", ["not a video", "one frame", "sizes differ", "no folder", "start past the end"])
def test_bad_input_is_one_line_and_exit_2(case, clip_files, tmp_path, capsys):
    from PIL import Image

    from impasto.cli import main

    clip, style = clip_files
    source, out = str(clip), str(tmp_path / "out.mp4")
    extra: list[str] = []
    if case == "not a video":
        (tmp_path / "notes.mp4").write_text("not a video")
        source, needle = str(tmp_path / "notes.mp4"), "is not a video"
    elif case == "one frame":
        write_clip(tmp_path / "one.mp4", shifted_clip(1, h=36, w=48))
        source, needle = str(tmp_path / "one.mp4"), "has 1 frame"
    elif case == "sizes differ":
        folder = tmp_path / "frames"
        folder.mkdir()
        Image.fromarray(shifted_clip(1)[0]).save(folder / "a1.png")
        Image.fromarray(shifted_clip(1, h=40)[0]).save(folder / "a2.png")
        source, needle = str(folder), "different sizes"
    elif case == "no folder":
        out, needle = str(tmp_path / "missing" / "out.mp4"), "does not exist"
    else:
        extra, needle = ["--start", "6"], "leaves none"
    assert main(["video", source, str(style), "-o", out, *TINY, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("impasto: error:") and needle in err[0], err


def test_style_targets_are_built_once_for_a_clip(style_img):
    from PIL import Image

    from impasto.api import FrameRunner
    from impasto.config import StyleConfig

    frames = [Image.fromarray(f) for f in shifted_clip(3, h=36, w=48)]
    cfg = StyleConfig(size=48, start_size=32, steps=2)
    runner = FrameRunner(frames[0], [style_img], cfg)
    first = runner.run(frames[0], index=0)
    builds = runner.target_builds
    assert builds == 2  # one per scale of the first frame's schedule (32 px, 45 px → 48 px: two sizes)
    later = cfg.replace(start_size=None, steps=2)
    second = runner.run(frames[1], later, init=first.image, previous=first.state, index=1)
    assert runner.target_builds == builds and second.status == "done" and len(second.history) == 2


def test_the_docs_video_example_runs(tmp_path, monkeypatch, style_img):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "how-to" / "video.md").read_text()
    code = re.search(r"## From Python.*?```python\n(.*?)```", text, re.S).group(1)
    code = code.replace("size=256, long_term=(1, 2, 4),\n                               frames=48",
                        "size=48, start_size=32, steps=2, later_steps=2, long_term=(1, 2, 4), frames=3, progress=False")
    assert "frames=3" in code
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "clip.mp4", shifted_clip(4, h=36, w=48))
    style_img.save(tmp_path / "style.jpg")
    ns: dict = {}
    exec(compile(code, "docs/how-to/video.md", "exec"), ns)
    assert ns["result"].status == "done" and container.probe_video(tmp_path / "clip-painted.mp4")["frames"] == 3


def test_a_missing_extra_says_what_to_install(monkeypatch):
    import importlib

    import impasto.video as video

    real = importlib.import_module

    def fake(name, *args):
        if name in ("av", "cv2"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(video.importlib, "import_module", fake)
    for module, words in (("av", "PyAV"), ("cv2", "OpenCV")):
        with pytest.raises(video.MissingVideoExtra, match=f"needs {words}.*pip install 'impasto\\[video\\]'"):
            video.require(module)
