"""Regions painted in the browser (static/masks.js): mouse strokes with a brush per style, sent with the job as
masks, and a result whose two halves follow their own styles; the gallery shows the masks, "reuse settings" brings
them back. Skipped like tests/test_browser.py where Playwright or Chromium is missing."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'impasto[web]'")
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")

from test_browser import ARTIFACTS, browser, expect, hold, open_page, server  # noqa: F401  (fixtures)


def texture(rgb, seed: int) -> Image.Image:
    a = np.random.default_rng(seed).random((48, 48, 1)) * 0.6 + 0.4
    return Image.fromarray((a * np.array(rgb)).astype(np.uint8))


def paint(page, tool: str, x0: float, x1: float) -> None:
    """Zigzag strokes of ``tool`` over the canvas between fractions x0 and x1 of its width, top to bottom."""
    page.locator(f'.mask-tool[data-tool="{tool}"]').click()
    box = page.locator("#mask-canvas").bounding_box()
    for fy in np.linspace(0.03, 0.97, 7):
        y = box["y"] + fy * box["height"]
        page.mouse.move(box["x"] + x0 * box["width"], y)
        page.mouse.down()
        page.mouse.move(box["x"] + x1 * box["width"], y, steps=12)
        page.mouse.up()


def test_paint_two_regions_and_get_a_result_that_follows_them(server, browser, tmp_path, content_img):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    paths = {"photo": tmp_path / "photo.png", "red": tmp_path / "red.png", "blue": tmp_path / "blue.png"}
    content_img.save(paths["photo"])
    texture([255, 40, 20], 0).save(paths["red"])
    texture([20, 60, 255], 1).save(paths["blue"])
    page = open_page(browser, server)
    page.set_input_files("#content-input", str(paths["photo"]))
    page.set_input_files("#style-input-1", str(paths["red"]))
    page.click("#add-style")
    page.set_input_files("#style-input-2", str(paths["blue"]))
    page.click("#masks-panel summary")
    expect(page.locator('.mask-tool[data-tool="2"]')).to_be_visible()
    page.locator("#mask-size").fill("30")  # a broad brush
    paint(page, "1", 0.02, 0.42)  # style 1 on the left
    page.click("#start")  # style 2 has no region yet: the page says so, and sends nothing
    expect(page.locator("#form-error")).to_contain_text("paint where style 2 goes too")
    paint(page, "2", 0.58, 0.98)  # style 2 on the right
    assert page.evaluate("() => [impastoMasks.painted('1'), impastoMasks.painted('2'), impastoMasks.painted('keep')]") \
        == [True, True, False]
    page.locator("#mask-canvas").screenshot(path=str(ARTIFACTS / "serve-masks-painted.png"))
    page.fill("#size", "64")
    page.fill("#start-size", "")
    page.fill("#first-steps", "")
    page.fill("#steps", "40")
    page.locator("#style-weight").fill("1.5")  # 10^1.5 ≈ 32
    page.click("#start")
    page.wait_for_selector("#status.done")
    card = page.locator(".card").first
    expect(card.locator("img.mask-thumb")).to_have_count(2)  # the gallery shows the regions beside the inputs
    job_id = card.get_attribute("data-job")
    job = httpx.get(f"{server}/api/jobs/{job_id}").json()
    assert job["inputs"]["masks"] == ["region-1.png", "region-2.png"]
    out = np.asarray(Image.open(io.BytesIO(httpx.get(f"{server}{job['urls']['image']}").content)).convert("RGB"))
    out = out.astype(float)
    left, right = ((out[:, s, 0] - out[:, s, 2]).mean() for s in (slice(0, 24), slice(40, 64)))
    assert left - right > 30, (left, right)  # red on the painted left, blue on the right
    page.screenshot(path=str(ARTIFACTS / "serve-masks-done.png"), full_page=True)

    page.locator(".mask-tool[data-tool='erase']").click()
    page.click("#mask-clear")
    assert page.evaluate("() => impastoMasks.painted('1')") is False
    card.get_by_text("reuse settings").click()  # the regions come back with the images
    expect(page.locator("#style-drop-2")).to_have_class("drop filled")
    page.wait_for_timeout(500)
    assert page.evaluate("() => [impastoMasks.painted('1'), impastoMasks.painted('2')]") == [True, True]
    assert page.problems == []
