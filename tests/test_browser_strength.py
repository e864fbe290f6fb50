"""The strength slider in a real browser: its OKLab blend (static/strength.js) gives Python's pixels, it re-blends a
finished result with the photo at the result's size (GET /api/jobs/{id}/photo), and Download saves what is shown."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'impasto[web]'")
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")

from impasto.api import blend_images
from impasto.core import colour
from impasto.io.images import tensor_to_pil
from test_browser import (  # noqa: F401  (fixtures)
    ARTIFACTS,
    browser,
    expect,
    hold,
    image_files,
    open_page,
    post_job,
    server,
    wait_ended,
)


def _python(photo: np.ndarray, shown: np.ndarray, was: float, now: float) -> np.ndarray:
    """Python's blend of (n, 3) bytes, as ``impasto blend`` computes it (colour.restrength, tensor_to_pil)."""
    t = lambda a: torch.from_numpy(a.T.reshape(1, 3, 1, -1).astype(np.float32) / 255)
    out = colour.restrength(t(photo), t(shown), was, now)
    return np.asarray(tensor_to_pil(out)).reshape(-1, 3)


def _rgba(a: np.ndarray) -> list[int]:
    return np.concatenate([a, np.full((len(a), 1), 255, np.uint8)], axis=1).ravel().tolist()


def test_the_pages_blend_gives_pythons_pixels(server, browser):  # noqa: F811
    page = open_page(browser, server)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (4000, 3), dtype=np.uint8)
    shown = rng.integers(0, 256, (4000, 3), dtype=np.uint8)
    photo[:8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3], [254, 1, 128],
                 [10, 10, 10]]  # the corners of the cube and the dark end, where sRGB's curve turns
    for was, now in [(1.0, 0.5), (1.0, 0.25), (1.0, 0.0), (0.5, 1.0), (0.6, 0.3), (1.0, 1.0)]:
        js = np.array(page.evaluate("([p, s, was, now]) => Array.from(blendBytes(new Uint8ClampedArray(p), "
                                    "new Uint8ClampedArray(s), was, now))",
                                    [_rgba(photo), _rgba(shown), was, now]), dtype=int).reshape(-1, 4)
        py = _python(photo, shown, was, now).astype(int)
        diff = np.abs(js[:, :3] - py)
        assert diff.max() <= 1, (was, now)
        assert (diff == 0).mean() > 0.999, (was, now)  # a grey level apart only where both round at a half
        assert (js[:, 3] == 255).all()  # the result's alpha (opaque here)


def test_the_slider_reblends_a_finished_result_and_downloads_it(server, browser, tmp_path, content_img,  # noqa: F811
                                                                style_img):
    content, style = image_files(tmp_path, content_img, style_img)
    job = post_job(server, content, style, size=32, start_size=None, steps=2)
    assert wait_ended(server, job["id"])["status"] == "done"
    base = f"{server}/api/jobs/{job['id']}"
    result = Image.open(io.BytesIO(httpx.get(f"{base}/image").content)).convert("RGB")
    photo = Image.open(io.BytesIO(httpx.get(f"{base}/photo").content)).convert("RGB")
    assert photo.size == result.size  # the photo at the result's size, as the run resized it
    page = open_page(browser, server)
    page.locator(".card .thumb").first.click()
    slider = page.locator("#strength")
    expect(page.locator("#strength-row")).to_be_visible()
    assert slider.input_value() == "1"
    assert page.locator("#download").get_attribute("href").endswith("/image?download=true")  # the PNG with its recipe
    slider.fill("0.4")
    expect(page.locator("#strength-value")).to_have_text("0.40")
    expect(page.locator("#blended")).to_be_visible()
    shown = np.array(page.locator("#blended").evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"), dtype=int)
    shown = shown.reshape(result.height, result.width, 4)[..., :3]
    want = np.asarray(blend_images(photo, result, 0.4), dtype=int)
    assert np.abs(shown - want).max() <= 1
    download = page.locator("#download")
    expect(download).to_have_attribute("download", f"photo-painting-{job['id'][:8]}-strength40.png")
    with page.expect_download() as info:
        download.click()
    saved = tmp_path / "at40.png"
    info.value.save_as(saved)
    assert np.array_equal(np.asarray(Image.open(saved).convert("RGB"), dtype=int), shown)  # what is shown
    page.screenshot(path=str(ARTIFACTS / "serve-strength.png"), full_page=True)
    slider.fill("1")  # back at the result's own strength: the server's PNG again
    expect(page.locator("#blended")).to_be_hidden()
    assert page.locator("#download").get_attribute("href").endswith("/image?download=true")
    assert page.problems == []
    assert httpx.get(f"{server}/api/jobs/nope/photo").status_code == 404
