"""The page in a real browser: Playwright drives Debian's Chromium (no browser download) against a server on a free
loopback port. Skipped, with the reason, where Playwright or Chromium is missing. Screenshots (desktop and a 390 x 844
phone: mid-run, done, after a reload, the queue, the split view) are left in ``tests/artifacts/`` (gitignored) for a
person to look at."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'impasto[web]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")

from impasto.io.recipe import read_recipe  # noqa: E402  (after the skips: needs the web extra)
from impasto.web.app import create_app  # noqa: E402

expect = sync_api.expect

CHROMIUM = os.environ.get("IMPASTO_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 180_000  # the suite shares a few busy cores


class Hold:
    """Holds a run just after step ``step`` (its preview made) until ``release()``; once released, never again.
    A busy machine can otherwise finish the run while the browser takes one screenshot, and the image URL serves
    the latest preview, whatever step it names."""

    def __init__(self) -> None:
        self.step: int | None = None
        self.go = threading.Event()

    def release(self) -> None:
        self.go.set()

    def wait(self, step: int) -> None:
        if step == self.step and not self.go.is_set():
            assert self.go.wait(TIMEOUT_MS / 1000), "the test did not release the held run"


def paced(queue, hold: Hold, seconds: float = 0.3) -> None:
    """Every step lasts at least ``seconds`` (the real engine's steps), so the page sees the run while it runs."""
    real = queue._run_fn

    def run(*args, callback, **kwargs):
        def slow(step):
            callback(step)
            hold.wait(step.step)
            time.sleep(seconds)

        return real(*args, callback=slow, **kwargs)

    queue._run_fn = run


@pytest.fixture
def hold():
    h = Hold()
    yield h
    h.release()  # never leave the worker waiting


@pytest.fixture
def server(tmp_path, hold):
    """The app under uvicorn in a thread, on a socket bound here (so the port cannot be taken in between)."""
    import uvicorn

    app = create_app(tmp_path / "results", "cpu", preview_every=1, allowed_hosts=["127.0.0.1"])
    paced(app.state.queue, hold)  # however fast the machine
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not srv.started:
        assert thread.is_alive() and time.monotonic() - t0 < 30, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)
    sock.close()


@pytest.fixture
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set IMPASTO_CHROMIUM)")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        except sync_api.Error as e:
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


ACCENT = "rgb(232, 176, 74)"  # style.css --accent
PHONE = {"width": 390, "height": 844}


def open_page(browser, server: str, viewport: dict | None = None):
    """A page on the server that records script errors and CSP violations in ``page.problems``."""
    page = browser.new_page(viewport=viewport or {"width": 1280, "height": 900}, accept_downloads=True)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    page.goto(server)
    page.wait_for_selector("body.ready")
    page.problems = problems
    return page


def image_files(tmp_path: Path, content_img, style_img) -> tuple[Path, Path]:
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    content_img.save(content)
    style_img.save(style)
    ARTIFACTS.mkdir(exist_ok=True)
    return content, style


def post_job(server: str, content: Path, style: Path, **config) -> dict:
    files = [("content", (content.name, content.read_bytes(), "image/png")),
             ("style", (style.name, style.read_bytes(), "image/png"))]
    resp = httpx.post(f"{server}/api/jobs", files=files, data={"config": json.dumps(config)}, timeout=60)
    assert resp.status_code == 201, resp.text
    return resp.json()


def wait_ended(server: str, job_id: str) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT_MS / 1000:
        job = httpx.get(f"{server}/api/jobs/{job_id}").json()
        if job["status"] in ("done", "cancelled", "diverged", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id} did not end")


def text_fits(page, selector: str) -> bool:
    """Does the widest option of a <select> fit inside it (its padding and the arrow taken off)?"""
    return page.locator(selector).evaluate("""s => {
        const cs = getComputedStyle(s), ctx = document.createElement("canvas").getContext("2d");
        ctx.font = `${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
        const widest = Math.max(...[...s.options].map((o) => ctx.measureText(o.text).width));
        return widest + parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight) + 20 <= s.clientWidth; }""")


def test_paint_in_the_browser(server, hold, browser, tmp_path, content_img, style_img):
    content, style = image_files(tmp_path, content_img, style_img)
    page = open_page(browser, server)
    assert page.locator("#server").inner_text().endswith("cpu")
    download = page.locator("#download")
    # Not yet clickable, and it does not look it: no fill, muted, a "not allowed" cursor.
    expect(download).to_have_attribute("aria-disabled", "true")
    expect(download).to_have_css("background-color", "rgba(0, 0, 0, 0)")
    expect(download).to_have_css("cursor", "not-allowed")
    assert text_fits(page, "#preserve-color"), "the colour menu's text is cut off"
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input-1", str(style))
    assert page.locator("#content-drop").get_attribute("class").split() == ["drop", "filled"]
    page.fill("#size", "32")
    page.fill("#start-size", "")
    page.fill("#steps", "6")
    page.fill("#first-steps", "")  # one scale: only steps counts
    page.locator("#style-weight").fill("2")  # the log slider: 10^2
    assert page.locator("#style-weight-value").inner_text() == "100"
    hold.step = 2  # the run waits after step 2 until the page has been photographed
    page.click("#start")

    # The preview appears, then changes as the picture forms.
    # (Waits use locators, not wait_for_function: the page's CSP forbids the eval that the latter needs.)
    # The page swaps in a new <img> once it has loaded, so the frame around it is what to photograph.
    preview, frame = page.locator("#preview"), page.locator("#frame")
    expect(preview).to_have_attribute("src", re.compile(r"/image\?step=2$"))
    first_pixels = frame.screenshot()  # step 2's picture: the run is held there
    hold.release()
    expect(preview).not_to_have_attribute("src", re.compile(r"/image\?step=2$"))  # a later step, or the end
    assert frame.screenshot() != first_pixels, "the preview did not change"
    expect(page.locator("#progress-text")).to_contain_text(re.compile(r"step \d+ / 6 · 32 px · loss"))
    expect(preview).to_have_css("image-rendering", "auto")  # a 32 px picture drawn large: smooth, not a mosaic
    page.screenshot(path=str(ARTIFACTS / "serve-mid-run.png"), full_page=True)

    page.wait_for_selector("#status.done")
    # The final image, not a preview (it is swapped in once loaded, a moment after the badge changes).
    expect(page.locator("#preview")).to_have_attribute("src", re.compile(r"\?v=done-"))
    assert page.locator("#progress-text").inner_text().startswith("step 6 / 6 · 32 px")
    assert page.is_enabled("#cancel") is False
    expect(download).to_have_css("background-color", ACCENT)
    job_id = page.locator(".card").first.get_attribute("data-job")
    with page.expect_download() as info:
        page.click("#download")
    assert info.value.suggested_filename == f"photo-painting-{job_id[:8]}.png"
    saved = tmp_path / "download.png"
    info.value.save_as(saved)
    recipe = read_recipe(saved)
    assert recipe["status"] == "done" and recipe["steps_done"] == 6
    assert recipe["config"]["size"] == 32 and recipe["config"]["style_weight"] == 100
    assert recipe["inputs"] == {"content": "photo.png", "styles": ["painting.png"]}

    # The gallery lists it; "reuse settings" puts them back into the form.
    card = page.locator(".card").first
    expect(card).to_contain_text("done")  # the gallery reloads when a job ends
    expect(card).to_contain_text("32 px · one scale · 6 steps · style ×100")
    expect(card.locator(".thumb img")).to_have_css("image-rendering", "auto")
    page.fill("#steps", "99")
    card.get_by_text("reuse settings").click()
    expect(page.locator("#steps")).to_have_value("6")
    assert page.input_value("#first-steps") == ""
    page.screenshot(path=str(ARTIFACTS / "serve-done.png"), full_page=True)

    # A blend of two styles, then cancelled from the page while it runs.
    assert not page.is_visible("#blend-1")
    page.click("#add-style")
    page.set_input_files("#style-input-2", str(content))
    expect(page.locator("#blend-1")).to_be_visible()
    page.locator("#blend-2").fill("25")
    page.fill("#steps", "500")
    page.click("#start")
    expect(page.locator("#status")).to_have_text("running")
    expect(page.locator("#progress-text")).to_contain_text("/ 500 · 32 px · loss")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.locator(".card")).to_have_count(2)
    blended = page.locator(".card").first
    expect(blended).to_contain_text("cancelled")
    expect(blended).to_contain_text("blend 0.667:0.333")
    page.screenshot(path=str(ARTIFACTS / "serve-blend-cancelled.png"), full_page=True)
    assert page.problems == []


def test_a_reload_mid_run_keeps_the_job_the_form_and_the_images(server, browser, tmp_path, content_img, style_img):
    content, style = image_files(tmp_path, content_img, style_img)
    page = open_page(browser, server)
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input-1", str(style))
    page.click("#add-style")
    page.set_input_files("#style-input-2", str(content))
    page.locator("#blend-2").fill("25")
    page.fill("#size", "64")
    page.fill("#start-size", "32")  # coarse-to-fine: 32, 45, 64 px
    page.fill("#first-steps", "200")
    page.fill("#steps", "200")
    page.locator("#style-weight").fill("1.5")
    page.select_option("#preserve-color", "luminance")
    page.click("details.more summary")
    page.fill("#extra", '{"seed": 7}')
    page.click("#start")
    expect(page.locator("#status")).to_have_text("running")
    expect(page.locator("#progress-text")).to_contain_text(re.compile(r"step \d+ / 600 · scale 1/3 · 32 px · loss"))
    title = page.locator("#run-title").inner_text()
    assert title == "photo.png × painting.png + photo.png"

    page.reload()
    page.wait_for_selector("body.ready")
    expect(page.locator("#status")).to_have_text("running")  # re-attached to the same job
    assert page.locator("#run-title").inner_text() == title
    values = {sel: page.input_value(sel) for sel in ("#size", "#steps", "#start-size", "#preserve-color", "#blend-2")}
    assert values == {"#size": "64", "#steps": "200", "#start-size": "32", "#preserve-color": "luminance",
                      "#blend-2": "25"}
    assert page.locator("#style-weight-value").inner_text() == "31.6"
    assert '"seed": 7' in page.input_value("#extra") and page.locator("details.more").get_attribute("open") is not None
    for zone in ("#content-drop", "#style-drop-1", "#style-drop-2"):  # the images, fetched from the job's inputs
        expect(page.locator(zone)).to_have_class("drop filled")
        expect(page.locator(f"{zone} img")).to_have_attribute("src", re.compile("^blob:"))
    expect(page.locator("#blend-1")).to_be_visible()
    before = page.locator("#progress-text").inner_text()
    expect(page.locator("#progress-text")).not_to_have_text(before)  # the run goes on in view

    # A second job queues behind it: the running one stays in view, the new one shows its place.
    page.fill("#steps", "3")
    page.fill("#first-steps", "")
    page.click("#start")
    expect(page.locator("#form-note")).to_contain_text("Queued (1 ahead)")
    assert page.locator("#run-title").inner_text() == title
    expect(page.locator("#status")).to_have_text("running")
    expect(page.locator("#queue")).to_contain_text("1 ahead")
    expect(page.locator(".card")).to_have_count(2)  # the gallery is live: no refresh pressed
    queued = page.locator(".card").first
    expect(queued.locator(".badge")).to_have_text("queued · 1 ahead")
    expect(page.locator(".card").nth(1).locator(".badge")).to_contain_text(re.compile(r"running · \d+/600"))
    page.screenshot(path=str(ARTIFACTS / "serve-queue.png"), full_page=True)

    # On a phone the picture comes first, and nothing is wider than the screen.
    page.set_viewport_size(PHONE)
    run_box, form_box = page.locator("#run").bounding_box(), page.locator("#job-form").bounding_box()
    assert run_box["y"] < form_box["y"] and run_box["width"] <= PHONE["width"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    assert text_fits(page, "#preserve-color")
    page.screenshot(path=str(ARTIFACTS / "serve-phone-run.png"))
    page.screenshot(path=str(ARTIFACTS / "serve-phone-full.png"), full_page=True)

    # Cancelled: the queued job starts, and its card says so without a reload.
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(queued.locator(".badge")).to_contain_text(re.compile(r"running|done"))
    assert page.locator("#run-title").inner_text() == title  # the ended job stays in view
    expect(page.locator(".card").first.locator(".badge")).to_have_text("done")
    assert page.problems == []


def test_reuse_compare_and_delete_from_the_gallery(server, browser, tmp_path, content_img, style_img):
    content, style = image_files(tmp_path, content_img, style_img)
    fast = {"size": 32, "start_size": None, "first_steps": None, "steps": 3}
    light, heavy = (post_job(server, content, style, **fast, style_weight=w) for w in (10, 3000))
    for j in (light, heavy):
        assert wait_ended(server, j["id"])["status"] == "done"
    page = open_page(browser, server)
    cards = page.locator(".card")
    expect(cards).to_have_count(2)
    light_card = page.locator(f'.card[data-job="{light["id"]}"]')
    heavy_card = page.locator(f'.card[data-job="{heavy["id"]}"]')

    # "reuse settings" restores the images too, from the job's stored inputs.
    assert page.locator("#content-drop").get_attribute("class").split() == ["drop"]
    light_card.get_by_text("reuse settings").click()
    expect(page.locator("#content-drop")).to_have_class("drop filled")
    expect(page.locator("#style-drop-1")).to_have_class("drop filled")
    expect(page.locator("#style-weight-value")).to_have_text("10")
    assert page.input_value("#steps") == "3"
    page.fill("#size", "48")
    page.fill("#start-size", "24")  # coarse-to-fine, 24, 34 and 48 px: the chart marks the scale changes
    page.click("#start")  # paints from those images as they are: no file chosen by hand
    expect(cards).to_have_count(3)
    expect(page.locator("#run-title")).to_have_text("photo.png × painting.png")
    expect(page.locator("#status")).to_have_text("done")
    assert page.locator("#progress-text").inner_text().startswith("step 12 / 12 · scale 3/3 · 48 px · loss")
    page.locator("#run").screenshot(path=str(ARTIFACTS / "serve-scales.png"))

    # Compare: pick two cards, then the split view shows both, one clipped over the other.
    expect(page.locator("#compare-open")).to_be_hidden()
    light_card.locator(".pick input").check()
    expect(page.locator("#compare-open")).to_be_disabled()
    newest = cards.first  # the coarse-to-fine one just painted: more style, so the split shows
    newest.locator(".pick input").check()
    page.click("#compare-open")
    dialog = page.locator("#compare")
    expect(dialog).to_be_visible()
    for img, width in (("#compare-a", 32), ("#compare-b", 48)):
        expect(page.locator(img)).to_have_js_property("complete", True)
        expect(page.locator(img)).to_have_js_property("naturalWidth", width)
    assert "32 px · one scale · 3 steps · style ×10" in page.locator("#compare-label-a").inner_text()
    assert "48 px · from 24" in page.locator("#compare-label-b").inner_text()
    page.locator("#compare-slider").fill("25")
    view, line = page.locator("#compare-view").bounding_box(), page.locator(".split-line").bounding_box()
    assert abs(line["x"] - (view["x"] + 0.25 * view["width"])) < 3
    expect(page.locator("#compare-b")).to_have_css("clip-path", "inset(0px 0px 0px 25%)")
    page.screenshot(path=str(ARTIFACTS / "serve-compare.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # Delete, after a confirmation; "keep" backs out.
    heavy_card.get_by_text("delete").click()
    expect(heavy_card).to_contain_text("Delete this result and its images?")
    heavy_card.get_by_text("keep").click()
    expect(heavy_card.locator(".card-actions")).to_contain_text("reuse settings")
    heavy_card.get_by_text("delete").click()
    heavy_card.locator(".confirm-delete").click()
    expect(cards).to_have_count(2)
    assert heavy["id"] not in [j["id"] for j in httpx.get(f"{server}/api/jobs").json()["jobs"]]
    assert not (tmp_path / "results" / heavy["id"]).exists()
    assert (tmp_path / "results" / light["id"] / "result.png").is_file()

    page.set_viewport_size(PHONE)
    page.screenshot(path=str(ARTIFACTS / "serve-phone-done.png"), full_page=True)
    assert page.problems == []


def test_the_api_docs_render_offline(server, browser):
    """/docs draws Swagger UI from this server's files; any request elsewhere is refused (and would fail here)."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    elsewhere: list[str] = []

    def only_here(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    page.goto(f"{server}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("impasto", timeout=TIMEOUT_MS)
    expect(page.locator(".opblock-summary-path", has_text="/api/jobs/{job_id}/cancel")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "serve-docs.png"))
    assert elsewhere == []
