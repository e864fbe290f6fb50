"""The page in a real browser: Playwright drives Debian's Chromium (no browser download) against a server on a free
loopback port. Skipped, with the reason, where Playwright or Chromium is missing. A mid-run screenshot is left in
``tests/artifacts/`` for a person to look at."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

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


def paced(queue, seconds: float = 0.3) -> None:
    """Every step lasts at least ``seconds`` (the real engine's steps), so the page sees the run while it runs."""
    real = queue._run_fn

    def run(*args, callback, **kwargs):
        def slow(step):
            callback(step)
            time.sleep(seconds)

        return real(*args, callback=slow, **kwargs)

    queue._run_fn = run


@pytest.fixture
def server(tmp_path):
    """The app under uvicorn in a thread, on a socket bound here (so the port cannot be taken in between)."""
    import uvicorn

    app = create_app(tmp_path / "results", "cpu", preview_every=1, allowed_hosts=["127.0.0.1"])
    paced(app.state.queue)  # however fast the machine
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


def test_paint_in_the_browser(server, browser, tmp_path, content_img, style_img):
    content, style = tmp_path / "photo.png", tmp_path / "painting.png"
    content_img.save(content)
    style_img.save(style)
    ARTIFACTS.mkdir(exist_ok=True)

    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    problems: list[str] = []  # script errors and CSP violations show up here
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)

    page.goto(server)
    page.wait_for_selector("body.ready")
    assert page.locator("#server").inner_text().endswith("cpu")
    page.set_input_files("#content-input", str(content))
    page.set_input_files("#style-input-1", str(style))
    assert page.locator("#content-drop").get_attribute("class").split() == ["drop", "filled"]
    page.fill("#size", "32")
    page.fill("#start-size", "")
    page.fill("#steps", "6")
    page.fill("#first-steps", "")  # one scale: only steps counts
    page.locator("#style-weight").fill("2")  # the log slider: 10^2
    assert page.locator("#style-weight-value").inner_text() == "100"
    page.click("#start")

    # The preview appears, then changes as the picture forms.
    # (Waits use locators, not wait_for_function: the page's CSP forbids the eval that the latter needs.)
    # The page swaps in a new <img> once it has loaded, so the frame around it is what to photograph.
    preview, frame = page.locator("#preview"), page.locator("#frame")
    expect(preview).to_have_attribute("src", re.compile(r"/image\?step=\d+$"))
    first_src = preview.get_attribute("src")
    first_pixels = frame.screenshot()
    expect(preview).not_to_have_attribute("src", first_src)
    assert frame.screenshot() != first_pixels, "the preview did not change"
    expect(page.locator("#progress-text")).to_contain_text("loss")
    page.screenshot(path=str(ARTIFACTS / "serve-mid-run.png"), full_page=True)

    page.wait_for_selector("#status.done")
    assert "?v=done-" in page.get_attribute("#preview", "src")  # the final image, not a preview
    assert page.locator("#progress-text").inner_text().startswith("step 6 / 6")
    assert page.is_enabled("#cancel") is False
    with page.expect_download() as info:
        page.click("#download")
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
    page.fill("#steps", "99")
    card.get_by_text("reuse settings").click()
    assert page.input_value("#steps") == "6" and page.input_value("#first-steps") == ""
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
    expect(page.locator("#progress-text")).to_contain_text("/ 500 · loss")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("cancelled")
    expect(page.locator(".card")).to_have_count(2)
    blended = page.locator(".card").first
    expect(blended).to_contain_text("cancelled")
    expect(blended).to_contain_text("blend 0.667:0.333")
    page.screenshot(path=str(ARTIFACTS / "serve-blend-cancelled.png"), full_page=True)
    assert problems == []
