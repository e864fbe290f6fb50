"""``impasto serve``'s API in-process: jobs end to end with their events, the queue, cancelling, bad and oversized
uploads, restarts, and the ``serve`` command. Images are 32 px and runs a few steps: the engine is real."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import re
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'impasto[web]'")
pytest.importorskip("multipart", reason="the web extra is not installed: pip install 'impasto[web]'")

with warnings.catch_warnings():
    # Newer Starlette prefers the `httpx2` package for its TestClient and warns (once, at import) when it falls back
    # to `httpx`; both work. Only that message is ignored, only here.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

import impasto
from impasto.api import FINAL, STATUSES
from impasto.cli import build_parser, main
from impasto.errors import ImpastoError
from impasto.io.recipe import read_recipe
from impasto.web.app import Limits, create_app
from impasto.web.forms import label
from impasto.web.jobs import JOB_ID
from impasto.web.results import file_stem

FAST = {"size": 32, "start_size": None, "first_steps": None, "steps": 3}
TIMEOUT = 180  # seconds; the suite shares a few busy cores


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def pngs(content_img, style_img, style2_img) -> dict[str, bytes]:
    return {"content": png(content_img), "style": png(style_img), "style2": png(style2_img)}


def make_client(results: Path, **kwargs) -> TestClient:
    kwargs.setdefault("preview_every", 1)
    return TestClient(create_app(results, "cpu", **kwargs))


@pytest.fixture
def client(tmp_path):
    with make_client(tmp_path / "results") as c:
        yield c


def submit(client: TestClient, pngs: dict[str, bytes], config: dict | None = None, styles: tuple = ("style",),
           headers: dict | None = None, **data: str):
    files = [("content", ("photo.png", pngs["content"], "image/png"))]
    files += [("style", (f"{s}.png", pngs[s], "image/png")) for s in styles]
    return client.post("/api/jobs", files=files, data={"config": json.dumps(config or FAST), **data}, headers=headers)


def paced(queue, seconds: float = 0.3) -> None:
    """Make every step last at least ``seconds``, so that a watcher sees the job while it runs even where the
    engine is fast (the steps are still the real engine's)."""
    real = queue._run_fn

    def run(*args, callback, **kwargs):
        def slow(step):
            callback(step)
            time.sleep(seconds)

        return real(*args, callback=slow, **kwargs)

    queue._run_fn = run


def wait_for(client: TestClient, job_id: str, ok, what: str) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:
        job = client.get(f"/api/jobs/{job_id}").json()
        if ok(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never {what}: {job}")


def ended(job: dict) -> bool:
    return job["status"] in FINAL


def read_events(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    events, name = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: "):])))
    return events


def test_a_job_runs_end_to_end_with_live_events_and_a_recipe(tmp_path, pngs):
    results = tmp_path / "results"
    with make_client(results) as client:
        paced(client.app.state.queue)
        resp = submit(client, pngs)
        assert resp.status_code == 201, resp.text
        job = resp.json()
        assert JOB_ID.match(job["id"]) and job["position"] == 0
        assert resp.headers["location"] == f"/api/jobs/{job['id']}"
        # what it will take here, before it starts: the estimate a CLI run prints, for these images and settings
        from impasto.api import estimate_run

        expected = estimate_run(Image.open(io.BytesIO(pngs["content"])), Image.open(io.BytesIO(pngs["style"])),
                                {**FAST, "device": "cpu"})[0].seconds
        assert job["estimate_s"] == round(expected, 1) and job["estimate_s"] > 0

        events = read_events(client, job["id"])
        names = [n for n, _ in events]
        assert names[0] == "state" and names[-1] == "end", names
        progress = [d for n, d in events if n == "progress"]
        steps = [p["step"] for p in progress]
        # Every step from the one the stream joined at (the "state" event carries where it stood), in order, to the
        # end; on a loaded machine the first step can finish before the stream subscribes.
        assert steps and steps == list(range(steps[0], 4)) and steps[0] <= 2, steps
        assert all(p["total_steps"] == 3 and p["total"] > 0 and {"content", "style"} <= p.keys() for p in progress)
        previews = [d for n, d in events if n == "preview"]
        assert previews and previews[0]["url"].startswith(f"/api/jobs/{job['id']}/image")
        end = events[-1][1]
        assert end["status"] == "done" and end["has_result"] and end["step"] == 3

        resp = client.get(f"/api/jobs/{job['id']}/image", params={"download": "true"})
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
        assert resp.headers["content-disposition"] == f'attachment; filename="photo-style-{job["id"][:8]}.png"'
        (tmp_path / "got.png").write_bytes(resp.content)
        recipe = read_recipe(tmp_path / "got.png")
        assert recipe["config"]["size"] == 32 and recipe["config"]["steps"] == 3
        assert recipe["steps_done"] == 3 and recipe["status"] == "done"
        assert recipe["inputs"] == {"content": "photo.png", "styles": ["style.png"]}
        assert Image.open(io.BytesIO(resp.content)).size == (32, 24)

        status = client.get(f"/api/jobs/{job['id']}").json()
        assert [h["step"] for h in status["history"]] == [1, 2, 3] and status["elapsed"] > 0
        assert client.get(f"/api/jobs/{job['id']}/image", params={"thumb": 16}).status_code == 200
        assert client.get(status["urls"]["inputs"][1]).content == (results / job["id"] / "input-1.png").read_bytes()
        folder = results / job["id"]
        assert {p.name for p in folder.iterdir()} >= {"job.json", "input-0.png", "input-1.png", "result.png",
                                                      "result.losses.csv"}

    # A restart: the result is in the gallery again, with its settings, history and image.
    with make_client(results) as client:
        gallery = client.get("/api/jobs").json()["jobs"]
        assert [(j["id"], j["status"]) for j in gallery] == [(job["id"], "done")]
        assert gallery[0]["config"]["steps"] == 3 and gallery[0]["inputs"]["content"] == "photo.png"
        assert len(client.get(f"/api/jobs/{job['id']}").json()["history"]) == 3
        assert client.get(f"/api/jobs/{job['id']}/image").content == resp.content
        assert [n for n, _ in read_events(client, job["id"])] == ["state", "end"]


def test_jobs_wait_their_turn_in_order(client, pngs):
    queue = client.app.state.queue
    queue.pause()  # hold the worker so that all three are queued before the first starts
    one_step = {**FAST, "steps": 1}
    jobs = [submit(client, pngs, one_step).json() for _ in range(3)]
    assert [j["position"] for j in jobs] == [0, 1, 2] and {j["status"] for j in jobs} == {"queued"}
    assert client.get("/api/health").json()["queued"] == 3
    queue.resume()
    done = [wait_for(client, j["id"], ended, "ended") for j in jobs]
    assert [j["status"] for j in done] == ["done"] * 3
    for a, b in itertools.pairwise(done):
        assert a["finished"] <= b["started"], "one job at a time, in the order they came"
    gallery = [j["id"] for j in client.get("/api/jobs").json()["jobs"]]
    assert gallery == [j["id"] for j in reversed(jobs)], "the gallery lists the newest first"


def test_cancel_works_queued_and_running(client, pngs):
    queue = client.app.state.queue
    paced(queue, 0.05)  # 500 steps must outlast the cancel, even on a fast machine
    queue.pause()
    long = submit(client, pngs, {**FAST, "steps": 500}).json()
    waiting = submit(client, pngs).json()
    assert waiting["position"] == 1

    resp = client.post(f"/api/jobs/{waiting['id']}/cancel")
    assert resp.status_code == 202 and resp.json()["status"] == "cancelled"
    assert client.get(f"/api/jobs/{long['id']}").json()["position"] == 0
    assert client.post(f"/api/jobs/{waiting['id']}/cancel").status_code == 409

    queue.resume()
    wait_for(client, long["id"], lambda j: j["step"] >= 1, "started stepping")
    assert client.delete(f"/api/jobs/{long['id']}").status_code == 409, "delete refuses a running job"
    assert client.post(f"/api/jobs/{long['id']}/cancel").status_code == 202
    job = wait_for(client, long["id"], ended, "ended")
    assert job["status"] == "cancelled" and 1 <= job["step"] < 500
    assert job["has_result"], "a cancelled run keeps the picture so far"
    assert client.get(f"/api/jobs/{waiting['id']}").json()["step"] == 0, "the cancelled queued job never ran"
    resp = client.get(f"/api/jobs/{long['id']}/image")
    assert json.loads(Image.open(io.BytesIO(resp.content)).text["impasto"])["status"] == "cancelled"


def test_a_failed_job_says_why_and_the_server_keeps_serving(client, pngs):
    queue = client.app.state.queue
    real = queue._run_fn
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the GPU caught fire")
        if len(calls) == 2:
            raise ImpastoError("weights: no such file")
        return real(*args, **kwargs)

    queue._run_fn = flaky
    jobs = [submit(client, pngs, {**FAST, "steps": 1}).json() for _ in range(3)]
    first, second, third = (wait_for(client, j["id"], ended, "ended") for j in jobs)
    assert first["status"] == "failed" and "RuntimeError: the GPU caught fire" in first["message"]
    assert second["status"] == "failed" and second["message"] == "weights: no such file"
    assert third["status"] == "done"
    assert client.get("/api/health").json()["status"] == "ok"
    assert client.get(f"/api/jobs/{first['id']}/image").status_code == 404


class Outcome:
    """What the engine hands back, as far as the queue reads it: a status, a message, losses, an image to save."""

    def __init__(self, status: str, message: str = "") -> None:
        self.status, self.message, self.losses = status, message, {"total": 1.0}

    def save(self, path) -> None:
        Image.new("RGB", (8, 8), (90, 60, 30)).save(path)


def test_every_status_a_web_job_writes_is_in_the_vocabulary(client, pngs):
    """queued, running, done, diverged (not failed: the last finite image is kept), cancelled and failed, each
    written to job.json, served, and read back by a restarted server."""
    queue = client.app.state.queue
    outcomes = iter([Outcome("done"), Outcome("diverged", "the loss became NaN at step 2"),
                     Outcome("cancelled", "cancelled by request"), RuntimeError("the GPU caught fire")])

    def run(*args, **kwargs):
        o = next(outcomes)
        if isinstance(o, Exception):
            raise o
        return o

    written: list[str] = []
    real_save = queue._save
    queue._save = lambda job: (written.append(job.status), real_save(job))  # type: ignore[method-assign]
    queue._run_fn = run
    queue.pause()
    jobs = [submit(client, pngs, {**FAST, "steps": 1}).json() for _ in range(5)]
    assert client.post(f"/api/jobs/{jobs[4]['id']}/cancel").json()["status"] == "cancelled"
    queue.resume()
    got = [wait_for(client, j["id"], ended, "ended") for j in jobs]
    assert [j["status"] for j in got] == ["done", "diverged", "cancelled", "failed", "cancelled"]
    assert got[1]["message"] == "the loss became NaN at step 2" and got[1]["has_result"]
    assert client.get(f"/api/jobs/{jobs[1]['id']}/image").status_code == 200  # a diverged job keeps its image
    assert [n for n, _ in read_events(client, jobs[1]["id"])] == ["state", "end"]  # diverged is final
    assert set(written) == set(STATUSES)  # every word is used, and no other
    on_disk = {json.loads(p.read_text())["status"] for p in queue.root.glob("*/job.json")}
    assert on_disk == {"done", "diverged", "cancelled", "failed"}

    settings = client.get("/api/settings").json()["statuses"]
    assert settings == {"all": list(STATUSES), "final": [s for s in STATUSES if s in FINAL]}
    page_js = (Path(impasto.__file__).parent / "web" / "static" / "app.js").read_text(encoding="utf-8")
    assert f"const FINAL = {json.dumps(settings['final'])};" in page_js  # the page knows when a job has ended

    # A restart reads them back; a job.json with a word outside the vocabulary is skipped, not guessed at.
    odd = queue.root / jobs[0]["id"] / "job.json"
    odd.write_text(json.dumps({**json.loads(odd.read_text()), "status": "finished"}))
    with make_client(queue.root, start_worker=False) as again:
        back = {j["id"]: j["status"] for j in again.get("/api/jobs").json()["jobs"]}
    assert back == {j["id"]: j["status"] for j in got[1:]}


def chroma_gap(im: Image.Image, content: Image.Image) -> float:
    """Mean |ΔCb| + |ΔCr| (0-255) between an image and the content resized to it."""
    ref = content.convert("RGB").resize(im.size, Image.Resampling.LANCZOS)
    a, b = (np.asarray(x.convert("YCbCr"), dtype=np.float64)[..., 1:] for x in (im.convert("RGB"), ref))
    return float(np.abs(a - b).mean() * 2)


def test_luminance_only_jobs_render_their_coarse_scales(client, pngs, content_img):
    """preserve_color = "luminance" with a coarse-to-fine schedule: the first preview is rendered at the coarsest
    scale, where the content's chroma must be resized to the image (it crashed with "Sizes of tensors must match").
    Every preview and the result carry the content's chroma; the result is the full size."""
    paced(client.app.state.queue, 0.2)
    cfg = {"size": 64, "start_size": 32, "first_steps": 2, "steps": 2, "preserve_color": "luminance"}
    job = submit(client, pngs, cfg).json()
    previews: dict[int, Image.Image] = {}
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:
        now = client.get(f"/api/jobs/{job['id']}").json()
        if ended(now):
            break
        resp = client.get(f"/api/jobs/{job['id']}/image")
        if resp.status_code == 200 and resp.headers["cache-control"] == "no-store":  # a preview, not the result
            im = Image.open(io.BytesIO(resp.content))
            previews[json.loads(im.text["impasto"])["step"]] = im.convert("RGB")
        time.sleep(0.05)
    assert now["status"] == "done", now["message"]
    assert now["step"] == now["total_steps"] == 6  # three scales (32, 45, 64 px) of two steps
    assert previews and min(max(im.size) for im in previews.values()) < 64, sorted(previews)
    result = Image.open(io.BytesIO(client.get(f"/api/jobs/{job['id']}/image").content)).convert("RGB")
    assert result.size == (64, 48)
    for im in [*previews.values(), result]:
        assert chroma_gap(im, content_img) < 4, im.size
    # and the measure can tell colours apart: the style's are far from the content's
    assert chroma_gap(Image.open(io.BytesIO(pngs["style"])).resize((64, 48)), content_img) > 8


def bad_requests(pngs) -> list:
    big = png(Image.new("RGB", (200, 200), "red"))
    return [
        ({"content": b"hello, world"}, {}, 400, "content: photo.png: not an image"),
        ({"content": pngs["content"][:100]}, {}, 400, "broken or truncated"),
        ({"content": b""}, {}, 400, "is empty"),
        ({"style": big}, {}, 400, "over the limit of 10,000"),
        ({}, {"config": "{size: 32"}, 400, "config is not valid JSON"),
        ({}, {"config": "[1, 2]"}, 400, "config must be a JSON object"),
        ({}, {"config": json.dumps({"style_wieght": 3})}, 422, "did you mean 'style_weight'"),
        ({}, {"config": json.dumps({"size": 8})}, 422, "size = 8 is invalid"),
        ({}, {"config": json.dumps({"size": 4096})}, 422, "over this server's limit of 2048"),
        ({}, {"config": json.dumps({"init": "/etc/passwd"})}, 422, "reads no paths"),
        ({}, {"config": json.dumps({"weights": "/tmp/vgg.pth"})}, 422, "reads no paths"),
        ({}, {"config": json.dumps({"device": "cuda"})}, 422, "device is set by the server"),
        ({}, {"style_blend": "0.5,0.5"}, 422, "style_blend has 2 weights for 1 style image"),
        ({}, {"style_blend": "a,b"}, 422, "style_blend = 'a' is invalid"),
    ]


def test_bad_uploads_are_refused_with_a_clear_message(tmp_path, pngs):
    results = tmp_path / "results"
    with make_client(results, limits=Limits(max_pixels=10_000)) as client:
        client.app.state.queue.pause()
        small = {k: png(Image.open(io.BytesIO(v)).resize((32, 24))) for k, v in pngs.items()}
        for files, data, code, message in bad_requests(small):
            parts = {"content": small["content"], "style": small["style"], **files}
            resp = client.post("/api/jobs", data={"config": json.dumps(FAST), **data},
                               files=[(k, ("photo.png" if k == "content" else "s.png", v, "image/png"))
                                      for k, v in parts.items()])
            assert resp.status_code == code and message in resp.json()["detail"], (message, resp.text)
        resp = client.post("/api/jobs", files=[("content", ("photo.png", small["content"], "image/png"))])
        assert resp.status_code == 422 and resp.json()["detail"] == "style: Field required"
        resp = submit(client, small, styles=("style",) * 4)
        assert resp.status_code == 422 and "at most 3" in resp.json()["detail"]
        assert client.get("/api/jobs").json()["jobs"] == [] and list(results.iterdir()) == []


def test_file_names_and_ids_never_become_paths(client, pngs, tmp_path):
    client.app.state.queue.pause()
    files = [("content", ("../../../etc/evil.png", pngs["content"], "text/plain")),
             ("style", ("C:\\Windows\\style.exe", pngs["style"], "application/octet-stream"))]
    resp = client.post("/api/jobs", files=files, data={"config": json.dumps(FAST)})
    assert resp.status_code == 201, resp.text  # the type is what decodes, not the name or the declared type
    job = resp.json()
    assert job["inputs"] == {"content": "evil.png", "styles": ["style.exe"]}
    assert label("a/b\\c\x00\x1bd.png", "x") == "cd.png" and label("../", "style-1") == "style-1"
    root = client.app.state.queue.root
    assert [p.name for p in root.iterdir()] == [job["id"]]
    assert sorted(p.name for p in (root / job["id"]).iterdir()) == ["input-0.png", "input-1.png", "job.json"]
    for path in ("/api/jobs/..%2F..%2Fetc", "/api/jobs/x" * 2, f"/api/jobs/{job['id']}/inputs/2",
                 f"/api/jobs/{job['id']}/inputs/-1",
                 f"/api/jobs/{job['id'][:-1]}{'B' if job['id'].endswith('A') else 'A'}"):  # a near miss, never the id
        assert client.get(path).status_code == 404, path
    assert client.get(f"/api/jobs/{job['id']}/image").status_code == 404  # no image yet


def test_the_whole_request_is_capped(tmp_path, pngs):
    with make_client(tmp_path / "results", limits=Limits(max_upload_bytes=50_000)) as limited:
        resp = limited.post("/api/jobs", files=[("content", ("a.png", b"x" * 60_000, "image/png")),
                                                ("style", ("b.png", pngs["style"], "image/png"))])
        assert resp.status_code == 413 and "limit of 0.0477 MB" in resp.json()["detail"]


def _asgi_post(app, headers: list[tuple[bytes, bytes]], chunks: int, chunk: bytes) -> tuple[int, dict, int]:
    """POST /api/jobs straight into the ASGI app with a body that streams in; how many chunks did it read?"""
    read = 0
    sent: list[dict] = []
    first = (b'--B\r\nContent-Disposition: form-data; name="content"; filename="a.png"\r\n'
             b"Content-Type: image/png\r\n\r\n")

    async def receive() -> dict:
        nonlocal read
        read += 1
        if read > chunks:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": (first if read == 1 else b"") + chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/jobs", "raw_path": b"/api/jobs", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"content-type", b"multipart/form-data; boundary=B"), *headers],
             "client": ("127.0.0.1", 1234), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), read


def test_an_oversized_upload_is_refused_without_reading_it(tmp_path):
    app = create_app(tmp_path / "results", "cpu", limits=Limits(max_upload_bytes=64 * 1024), start_worker=False)
    chunk = b"x" * 16 * 1024
    # Declared too large: answered from the headers, before a byte of the body is read.
    status, body, read = _asgi_post(app, [(b"content-length", str(10 * 2**30).encode())], 10_000, chunk)
    assert status == 413 and "limit of 0.0625 MB" in body["detail"] and read == 0
    # Not declared (chunked): cut off just past the limit, not read to the end.
    status, body, read = _asgi_post(app, [], 10_000, chunk)
    assert status == 413 and "--max-upload-mb" in body["detail"] and read <= 64 // 16 + 1
    assert list((tmp_path / "results").iterdir()) == []


def test_queued_jobs_survive_a_restart_and_interrupted_ones_say_so(tmp_path, pngs):
    results = tmp_path / "results"
    with make_client(results) as client:
        client.app.state.queue.pause()
        first, second = submit(client, pngs).json(), submit(client, pngs).json()
    meta = results / first["id"] / "job.json"
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "status": "running"}))  # as if the server died while it ran
    (results / "not-a-job").mkdir()
    (results / ("A" * 22)).mkdir()  # a job-like folder without job.json
    with make_client(results, start_worker=False) as client:
        one, two = (client.get(f"/api/jobs/{j['id']}").json() for j in (first, second))
        assert one["status"] == "failed" and "server stopped while this job ran" in one["message"]
        assert two["status"] == "queued" and two["position"] == 0
        assert len(client.get("/api/jobs").json()["jobs"]) == 2


def test_event_streams_end_when_the_server_stops(client, pngs):
    queue = client.app.state.queue
    queue.pause()
    job = submit(client, pngs).json()
    timer = threading.Timer(0.3, queue.end_streams)
    timer.start()
    assert [n for n, _ in read_events(client, job["id"])] == ["state"]
    timer.join()


def test_page_docs_settings_and_health(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "chart.js", "style.css", "index.html"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert "//" not in "".join(line.split("//")[0] for line in page.text.splitlines() if "src=" in line)
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/image",
            "/api/health"} <= paths.keys()
    assert {"get", "delete"} <= paths["/api/jobs/{job_id}"].keys() and "post" in paths["/api/jobs"]
    settings = client.get("/api/settings").json()
    assert settings["defaults"]["size"] == 512 and "gatys-adam" in settings["presets"]
    assert settings["limits"]["max_styles"] == 3 and "style_weight" in settings["help"]
    assert client.get("/api/health").json() == {"status": "ok", "impasto": impasto.__version__, "device": "cpu",
                                                "queued": 0, "running": None}


def test_the_docs_need_nothing_from_elsewhere(client):
    """/docs (Swagger UI) and /redoc load their scripts and styles from this server: they work offline."""
    for page in ("/docs", "/redoc"):
        resp = client.get(page)
        assert resp.status_code == 200 and "/openapi.json" in resp.text
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|Url)\s*:\s*['"]([^'"]+)['"]""", resp.text)
        refs = [a or b for a, b in refs]
        assert refs, page
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), f"{page} loads {ref} from elsewhere"
            assert client.get(ref).status_code == 200, (page, ref)
        assert "cdn" not in resp.text.lower() and "googleapis" not in resp.text
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text[:5000]


def test_redoc_loads_no_logo_from_elsewhere(client):
    """Issue 28: ReDoc's sidebar fetched Redocly's logo from cdn.redoc.ly. The script /redoc loads no longer names
    it (the packaged one does: this test would see it), and the page allows images from this server only."""
    from impasto.web.docs import assets_dir

    logo = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
    assert logo in (assets_dir() / "redoc.standalone.js").read_bytes()  # what there is to take out
    page = client.get("/redoc")
    scripts = re.findall(r"<script src=\"([^\"]+)\"", page.text)
    assert scripts and all(s.startswith("/") and not s.startswith("//") for s in scripts)
    for src in scripts:
        code = client.get(src)
        assert code.status_code == 200 and code.headers["content-type"].startswith("text/javascript")
        assert not re.findall(rb"""src:\s*["']https?://""", code.content), src  # no image, frame or script from elsewhere
        assert b"cdn." not in code.content and b"googleapis" not in code.content
    assert page.headers["content-security-policy"] == "img-src 'self' data:"


def test_the_json_answers_have_examples_with_the_real_keys(client, pngs):
    """Issue 28: ReDoc showed an empty sample for every JSON answer. Each now has an example, and the examples have
    the keys of real answers (a job run here), so they cannot drift."""
    from impasto.web import examples as ex

    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for code, answer in op["responses"].items():  # FastAPI's own 422 has a schema, and ReDoc draws it
                if code != "422" and "application/json" in answer.get("content", {}):
                    assert answer["content"]["application/json"].get("example"), (method, path, code)
    job = submit(client, pngs).json()
    assert set(job) == set(ex.QUEUED) and set(job["urls"]) == set(ex.QUEUED["urls"])
    done = wait_for(client, job["id"], ended, "ended")
    assert done["status"] == "done", done
    assert set(done) == set(ex.WITH_HISTORY) and set(done["config"]) == set(ex.WITH_HISTORY["config"])
    assert set(done["losses"]) == set(ex.DONE["losses"]) and set(done["inputs"]) == set(ex.DONE["inputs"])
    assert [set(h) for h in done["history"]] == [set(h) for h in ex.WITH_HISTORY["history"]][:1] * len(done["history"])
    assert set(client.get("/api/jobs").json()["jobs"][0]) == set(ex.DONE)
    assert set(client.get("/api/health").json()) == set(ex.HEALTH)
    settings = spec["paths"]["/api/settings"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    assert settings.keys() == client.get("/api/settings").json().keys()
    refused = client.post(f"/api/jobs/{job['id']}/cancel").json()
    cancel = spec["paths"]["/api/jobs/{job_id}/cancel"]["post"]["responses"]["409"]["content"]["application/json"]
    assert refused == cancel["example"]  # the job is done: the very words
    assert client.get("/api/jobs/AAAAAAAAAAAAAAAAAAAAAA").json() == ex.NO_SUCH_JOB["content"]["application/json"][
        "example"]


def test_delete_removes_only_that_jobs_folder(tmp_path, pngs):
    results = tmp_path / "results"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("not impasto's")
    with make_client(results) as client:
        queue = client.app.state.queue
        one_step = {**FAST, "steps": 1}
        keep, gone = (submit(client, pngs, one_step).json() for _ in range(2))
        for j in (keep, gone):
            wait_for(client, j["id"], ended, "ended")
        (results / "notes.txt").write_text("mine")
        queue.pause()
        waiting = submit(client, pngs, one_step).json()

        assert client.delete(f"/api/jobs/{waiting['id']}").status_code == 409  # queued: cancel it first
        assert "cancel it first" in client.delete(f"/api/jobs/{waiting['id']}").json()["detail"]
        assert client.delete(f"/api/jobs/{'A' * 22}").status_code == 404
        assert client.delete("/api/jobs/..%2F..%2Foutside").status_code == 404
        resp = client.delete(f"/api/jobs/{gone['id']}")
        assert resp.status_code == 204 and resp.content == b""
        assert not (results / gone["id"]).exists()
        assert sorted(p.name for p in results.iterdir()) == sorted([keep["id"], waiting["id"], "notes.txt"])
        assert (results / keep["id"] / "result.png").is_file() and (tmp_path / "outside" / "keep.txt").is_file()
        listed = [j["id"] for j in client.get("/api/jobs").json()["jobs"]]
        assert listed == [waiting["id"], keep["id"]]
        for path in ("", "/image", "/inputs/0", "/events"):
            assert client.get(f"/api/jobs/{gone['id']}{path}").status_code == 404, path
        assert client.delete(f"/api/jobs/{gone['id']}").status_code == 404  # once

        # A job folder swapped for a link is refused, and what it points to stays.
        job = queue.get(keep["id"])
        moved = tmp_path / "moved"
        (results / keep["id"]).rename(moved)
        (results / keep["id"]).symlink_to(moved, target_is_directory=True)
        with pytest.raises(ImpastoError, match="not a job folder"):
            queue.delete(job)
        resp = client.delete(f"/api/jobs/{keep['id']}")
        assert resp.status_code == 500 and "not a job folder" in resp.json()["detail"]
        assert (moved / "result.png").is_file() and queue.get(keep["id"]) is job
        (results / keep["id"]).unlink()
        moved.rename(results / keep["id"])
        assert client.post(f"/api/jobs/{waiting['id']}/cancel").status_code == 202
        assert client.delete(f"/api/jobs/{waiting['id']}").status_code == 204  # cancelled: ended, so it can go

    # A delete cut short (the folder renamed, not yet removed) is finished by the next server, never listed.
    (results / f".deleting-{keep['id']}").mkdir()
    with make_client(results, start_worker=False) as client:
        assert [j["id"] for j in client.get("/api/jobs").json()["jobs"]] == [keep["id"]]
    assert sorted(p.name for p in results.iterdir()) == sorted([keep["id"], "notes.txt"])


def test_downloads_are_named_after_their_inputs(client, pngs):
    client.app.state.queue.pause()
    files = [("content", ('My photo (1).JPG', pngs["content"], "image/png")),
             ("style", ("Café Nocturne; x.png", pngs["style"], "image/png")),
             ("style", ("...", pngs["style2"], "image/png"))]
    job = client.post("/api/jobs", files=files, data={"config": json.dumps(FAST)}).json()
    assert job["download_name"] == f"My-photo-1-Cafe-Nocturne-x+style2-{job['id'][:8]}.png"
    queue = client.app.state.queue
    queue.cancel(queue.get(job["id"]))
    queue.get(job["id"]).has_result = True
    Image.new("RGB", (8, 8)).save(queue.get(job["id"]).result_path)
    resp = client.get(f"/api/jobs/{job['id']}/image", params={"download": "true"})
    assert resp.headers["content-disposition"] == f'attachment; filename="{job["download_name"]}"'
    assert file_stem('say "hi"\r\n; rm -rf /.png', "x") == "say-hi-rm-rf" and file_stem("日本.png", "style1") == "style1"


def test_serve_command_binds_loopback_and_refuses_foreign_hosts(tmp_path, monkeypatch):
    import uvicorn

    args = build_parser().parse_args(["serve", "--results", str(tmp_path / "r"), "--device", "cpu"])
    assert (args.host, args.port, args.device) == ("127.0.0.1", 8000, "cpu")
    seen = {}
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, **kw: seen.update(config=self.config, server=self))
    assert args.func(args) == 0
    config = seen["config"]
    assert (config.host, config.port) == ("127.0.0.1", 8000)
    with TestClient(config.app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/api/health", headers={"host": "evil.example"}).status_code == 400  # DNS rebinding
    queue = config.app.state.queue
    seen["server"].handle_exit(2, None)  # Ctrl-C: open event streams end, so that uvicorn can stop
    assert queue.streams_ended and seen["server"].should_exit
    assert build_parser().parse_args(["serve", "--host", "0.0.0.0"]).host == "0.0.0.0"
    (tmp_path / "file").write_text("")
    assert main(["serve", "--results", str(tmp_path / "file" / "r")]) == 2  # "cannot create the results folder"


def test_other_sites_cannot_post_or_cancel(client, pngs):
    client.app.state.queue.pause()
    job = submit(client, pngs, headers={"origin": "http://testserver"})
    assert job.status_code == 201, job.text  # the page itself
    evil = {"origin": "http://evil.example"}
    resp = submit(client, pngs, headers=evil)
    assert resp.status_code == 403 and "cross-origin" in resp.json()["detail"]
    assert client.post(f"/api/jobs/{job.json()['id']}/cancel", headers=evil).status_code == 403
    assert client.delete(f"/api/jobs/{job.json()['id']}", headers=evil).status_code == 403
    assert client.get("/api/jobs", headers=evil).status_code == 200  # reading is harmless
    assert len(client.get("/api/jobs").json()["jobs"]) == 1


def test_serve_without_the_web_extra_says_what_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve"]) == 2
    assert capsys.readouterr().err.strip() == "impasto: error: impasto serve needs uvicorn: pip install 'impasto[web]'"
