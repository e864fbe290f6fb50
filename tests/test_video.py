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
