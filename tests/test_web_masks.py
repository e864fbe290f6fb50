"""Masks in the web app: sent with a job as images, checked at the door, stored with its inputs, served back for the
gallery, and painted regions that the result follows. (The page's brushes: tests/test_browser_masks.py.)"""

from __future__ import annotations

import io
import json
import time
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'impasto[web]'")
pytest.importorskip("multipart", reason="the web extra is not installed: pip install 'impasto[web]'")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from impasto.io.recipe import read_recipe
from impasto.web.app import create_app

TIMEOUT = 180


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def texture(rgb, seed: int) -> Image.Image:
    a = np.random.default_rng(seed).random((48, 48, 1)) * 0.6 + 0.4
    return Image.fromarray((a * np.array(rgb)).astype(np.uint8))


def halves(w: int = 64, h: int = 48) -> tuple[bytes, bytes]:
    a = np.zeros((h, w), np.uint8)
    a[:, : w // 2] = 255
    return png(Image.fromarray(a)), png(Image.fromarray(255 - a))


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(tmp_path / "results", "cpu", preview_every=1)) as c:
        yield c


def post(client, content_img, styles, masks=(), keep=None, config=None):
    files = [("content", ("photo.png", png(content_img), "image/png"))]
    files += [("style", (f"s{i + 1}.png", png(s), "image/png")) for i, s in enumerate(styles)]
    files += [("mask", (f"region-{i + 1}.png", m, "image/png")) for i, m in enumerate(masks)]
    if keep is not None:
        files.append(("keep_mask", ("keep.png", keep, "image/png")))
    cfg = config or {"size": 32, "start_size": None, "first_steps": None, "steps": 2}
    return client.post("/api/jobs", files=files, data={"config": json.dumps(cfg)})


def wait(client, job_id: str) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "cancelled", "diverged", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id} did not end")


def test_masks_travel_with_the_job_and_the_result_follows_them(client, tmp_path, content_img):
    red, blue = texture([255, 40, 20], 0), texture([20, 60, 255], 1)
    left, right = halves()
    k = np.zeros((48, 64), np.uint8)
    k[30:44, 4:18] = 255
    resp = post(client, content_img, [red, blue], [left, right], png(Image.fromarray(k)),
                {"size": 64, "start_size": None, "first_steps": None, "steps": 40, "style_weight": 30})
    assert resp.status_code == 201, resp.text
    job = wait(client, resp.json()["id"])
    assert job["status"] == "done", job["message"]
    assert job["inputs"]["masks"] == ["region-1.png", "region-2.png"] and job["inputs"]["keep_mask"] == "keep.png"
    urls = job["urls"]
    assert urls["masks"] == [f"/api/jobs/{job['id']}/masks/1", f"/api/jobs/{job['id']}/masks/2"]
    for u in [*urls["masks"], urls["keep_mask"]]:
        r = client.get(u)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).mode == "L"  # stored grey, as sent (white on black)
    assert client.get(f"/api/jobs/{job['id']}/masks/3").status_code == 404
    assert client.get(f"/api/jobs/{job['id']}/masks/..%2Fresult").status_code == 404
    data = client.get(urls["image"]).content
    out = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(float)
    redness = [float((out[:, s, 0] - out[:, s, 2]).mean()) for s in (slice(20, 30), slice(36, 64))]
    assert redness[0] - redness[1] > 30, redness  # red where the first region is, blue in the second
    photo = np.asarray(content_img.resize((64, 48), Image.LANCZOS)).astype(float)
    assert np.abs(out - photo)[k > 0].max() <= 1.0  # the kept corner is the photo
    (tmp_path / "result.png").write_bytes(data)
    recipe = read_recipe(tmp_path / "result.png")
    assert recipe["inputs"]["masks"] == ["region-1.png", "region-2.png"] and recipe["config"]["masks"] is None


def test_bad_masks_are_refused_at_the_door(client, content_img, style_img, style2_img):
    left, right = halves()
    r = post(client, content_img, [style_img, style2_img], [left])
    assert r.status_code == 422 and "1 mask for 2 style image(s)" in r.json()["detail"]
    black = png(Image.new("L", (64, 48), 0))
    r = post(client, content_img, [style_img, style2_img], [left, black])
    assert r.status_code == 422 and r.json()["detail"].startswith("mask 2 is empty")
    r = post(client, content_img, [style_img, style2_img], [left, b"not a picture"])
    assert r.status_code == 400 and r.json()["detail"].startswith("mask 2: ")
    cfg = {"size": 32, "masks": ["/etc/passwd", "/etc/hosts"]}
    r = post(client, content_img, [style_img, style2_img], config=cfg)
    assert r.status_code == 422 and "masks is invalid here" in r.json()["detail"]
    assert client.get("/api/jobs").json()["jobs"] == []  # nothing was queued
