"""Robustness (issue 6): bad images, bad settings, bad outputs, divergence, Ctrl-C and resume, limits.

Every bad input must give exit code 2 (1 for a failed run), one line on stderr that names the file or the setting, no
traceback, and no output file; the good-but-unusual images must be handled correctly. The corpus is generated here.
Most CLI calls run in-process (``impasto.cli.main``); the interruption test signals a real ``impasto`` process.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

import impasto.api
import impasto.core.optimize
import impasto.io.fetch
import impasto.preflight
from impasto.cli import main
from impasto.config import FIELD_NAMES, StyleConfig, from_dict
from impasto.errors import ConfigError, ImageError
from impasto.io.checkpoint import load_checkpoint
from impasto.io.files import atomic_write
from impasto.io.images import load_image
from impasto.io.recipe import read_recipe
from impasto.samples import sample_content, sample_style

# One scale, one step, shallow layers: the runs here test handling, not pictures.
FAST = ["--size", "32", "--start-size", "none", "--first-steps", "none", "--steps", "1",
        "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "-q"]


# -- the generated corpus ---------------------------------------------------------------------------------------------
def _base() -> Image.Image:
    """48x36 with a red top-left corner, so that a rotation is visible."""
    im = sample_content(48, 36, seed=5)
    im.paste((255, 0, 0), (0, 0, 10, 8))
    return im


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but carries almost no data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _alpha(base: Image.Image) -> Image.Image:
    """Alpha 0 on the left half: those pixels must come out white (composited over white), not black."""
    a = Image.new("L", base.size, 255)
    a.paste(0, (0, 0, base.width // 2, base.height))
    return a


def _frames(base: Image.Image) -> list[Image.Image]:
    return [base, Image.new("RGB", base.size, (0, 200, 0)), Image.new("RGB", base.size, (0, 0, 200))]


def _make_corpus(d: Path) -> None:
    base = _base()
    (d / "empty.png").write_bytes(b"")
    jpg, png = _encode(base, "JPEG", quality=90), _encode(base, "PNG")
    (d / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (d / "truncated.png").write_bytes(png[: len(png) // 2])
    (d / "text.jpg").write_text("this is not a picture\n")
    (d / "folder.png").mkdir()
    (d / "vector.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>')
    (d / "document.pdf").write_bytes(_encode(base, "PDF"))  # Pillow writes PDF but cannot read it
    Image.new("RGB", (1, 1), (200, 10, 10)).save(d / "one.png")
    (d / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    (d / "bomb_small.png").write_bytes(_png_header_only(3000, 3000))
    ramp = np.linspace(0, 65535, 48 * 36).reshape(36, 48).astype(np.uint16)
    Image.fromarray(ramp).save(d / "sixteen.png")
    base.convert("L").save(d / "grey.png")
    base.convert("P", palette=Image.Palette.ADAPTIVE).save(d / "palette.png")
    base.convert("CMYK").save(d / "cmyk.jpg", quality=95)
    rgba = base.convert("RGBA")
    rgba.putalpha(_alpha(base))
    rgba.save(d / "rgba.png")
    la = base.convert("LA")
    la.putalpha(_alpha(base))
    la.save(d / "la.png")
    f = _frames(base)
    f[0].save(d / "animated.gif", save_all=True, append_images=f[1:], duration=100, loop=0)
    f[0].save(d / "animated.webp", save_all=True, append_images=f[1:], duration=100, loop=0, lossless=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    base.save(d / "exif6.jpg", exif=exif, quality=95)
    sample_content(48, 36, seed=1).save(d / "content.png")
    sample_style(40, 40, seed=2).save(d / "style.png")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    _make_corpus(d)
    return d


def _run(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    return code, capsys.readouterr().err


def _assert_one_line_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("impasto: error: "), err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


def _leftovers(folder: Path, before: set[str]) -> set[str]:
    return {p.name for p in folder.iterdir()} - before


# -- bad images: a table -----------------------------------------------------------------------------------------------
# (case, file, where it goes, extra flags, words the message must hold besides the file's name)
BAD_IMAGES = [
    ("missing path", "nowhere.png", "content", [], ["no such file"]),
    ("a directory", "folder.png", "content", [], ["directory"]),
    ("zero bytes", "empty.png", "content", [], ["empty"]),
    ("truncated jpeg", "truncated.jpg", "content", [], ["truncated"]),
    ("truncated png", "truncated.png", "style", [], ["truncated"]),
    ("text named .jpg", "text.jpg", "content", [], ["not an image"]),
    ("unsupported format (svg)", "vector.svg", "style", [], ["not an image"]),
    ("unsupported format (pdf)", "document.pdf", "content", [], ["not an image"]),
    ("1x1 image", "one.png", "content", [], ["1x1", "too small"]),
    ("decompression bomb", "bomb.png", "style", [], ["100000x100000", "over the limit", "--max-pixels"]),
    ("limit lowered", "content.png", "content", ["--max-pixels", "1000"], ["48x36", "--max-pixels"]),
    ("bad --init image", "text.jpg", "init", [], ["not an image"]),
    ("missing --init image", "nowhere.png", "init", [], ["no such file"]),
]


@pytest.mark.parametrize("case", BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_bad_image_is_one_line_exit_2_and_no_output(case, corpus, tmp_path, capsys, monkeypatch):
    _, name, where, flags, needles = case
    bad = str(corpus / name)
    content = bad if where == "content" else str(corpus / "content.png")
    style = bad if where == "style" else str(corpus / "style.png")
    extra = ["--init", bad] if where == "init" else []
    # Refused before any work: neither the network nor the optimiser may start.
    monkeypatch.setattr(impasto.api, "load_vgg", _must_not_run)
    monkeypatch.setattr(impasto.api, "optimize", _must_not_run)
    out = tmp_path / "out.png"
    before = {p.name for p in tmp_path.iterdir()}
    code, err = _run(["stylize", content, style, "-o", str(out), *FAST, *flags, *extra], capsys)
    assert code == 2, err
    _assert_one_line_error(err, name, *needles)
    assert not _leftovers(tmp_path, before)


def _must_not_run(*args, **kwargs):
    raise AssertionError("the run started although its input was bad")


def test_bomb_is_refused_from_its_header_without_decoding(corpus, monkeypatch):
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1))
    with pytest.raises(ImageError, match="over the limit"):
        load_image(corpus / "bomb.png")
    assert not decoded


def test_pixel_limit_can_be_raised(corpus, tmp_path, capsys):
    bomb = str(corpus / "bomb_small.png")  # 3000x3000 declared = 9,000,000 pixels, no real data
    code, err = _run(["stylize", str(corpus / "content.png"), bomb, "-o", str(tmp_path / "o.png"), *FAST,
                      "--max-pixels", "8000000"], capsys)
    assert code == 2
    _assert_one_line_error(err, "bomb_small.png", "over the limit of 8,000,000")
    # Raised: no longer refused for its size; it now gets as far as decoding (and its data is missing).
    code, err = _run(["stylize", str(corpus / "content.png"), bomb, "-o", str(tmp_path / "o.png"), *FAST,
                      "--max-pixels", "10000000"], capsys)
    assert code == 2
    _assert_one_line_error(err, "bomb_small.png", "truncated")


# -- unusual but good images ---------------------------------------------------------------------------------------------
def _arr(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64)


def _check_sixteen(im: Image.Image, corpus: Path) -> None:
    ramp = np.linspace(0, 65535, 48 * 36).reshape(36, 48)
    a = _arr(im)
    assert np.abs(a[..., 0] - ramp / 257).max() <= 1  # 16 → 8 bits by scaling, not clipping at 255
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()


def _check_grey(im: Image.Image, corpus: Path) -> None:
    assert np.array_equal(_arr(im)[..., 0], np.asarray(_base().convert("L"), dtype=np.float64))


def _check_palette(im: Image.Image, corpus: Path) -> None:
    with Image.open(corpus / "palette.png") as p:
        assert np.array_equal(_arr(im), _arr(p))


def _check_cmyk(im: Image.Image, corpus: Path) -> None:
    assert np.abs(_arr(im) - _arr(_base())).mean() < 8  # right colours (JPEG error only), not inverted


def _check_alpha(im: Image.Image, corpus: Path) -> None:
    a = _arr(im)
    assert (a[:, :24] == 255).all()  # transparent → white
    assert np.abs(a[:, 24:].mean() - _arr(_base().convert("L"))[:, 24:].mean()) < 6  # opaque part kept


def _check_first_frame(im: Image.Image, corpus: Path) -> None:
    a, b = _arr(im), _arr(_base())
    assert np.abs(a - b).mean() < 12  # the first frame, not the green or the blue one
    assert a[..., 1].mean() < 180 and a[..., 2].mean() > 60


def _check_exif(im: Image.Image, corpus: Path) -> None:
    assert im.size == (36, 48)  # portrait now
    want = _arr(_base().transpose(Image.Transpose.ROTATE_270))
    assert np.abs(_arr(im) - want).mean() < 6
    assert _arr(im)[2, -3, 0] > 200 and _arr(im)[2, -3, 1] < 60  # the red corner moved to the top right


GOOD_IMAGES = [
    ("16-bit png", "sixteen.png", _check_sixteen, None),
    ("grey", "grey.png", _check_grey, None),
    ("palette", "palette.png", _check_palette, None),
    ("cmyk jpeg", "cmyk.jpg", _check_cmyk, None),
    ("rgba", "rgba.png", _check_alpha, None),
    ("la", "la.png", _check_alpha, None),
    ("animated gif", "animated.gif", _check_first_frame, "first frame"),
    ("animated webp", "animated.webp", _check_first_frame, "first frame"),
    ("exif-rotated jpeg", "exif6.jpg", _check_exif, None),
]


@pytest.mark.parametrize("case", GOOD_IMAGES, ids=[c[0] for c in GOOD_IMAGES])
def test_unusual_image_is_loaded_correctly(case, corpus):
    _, name, check, note = case
    loaded = load_image(corpus / name)
    assert loaded.image.mode == "RGB"
    check(loaded.image, corpus)
    if note:
        assert any(note in n and name in n for n in loaded.notes)
    else:
        assert not loaded.notes


@pytest.mark.parametrize("name", ["animated.gif", "exif6.jpg", "la.png", "sixteen.png", "cmyk.jpg"])
def test_unusual_image_runs_through_the_cli(name, corpus, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, err = _run(["stylize", str(corpus / name), str(corpus / "style.png"), "-o", str(out), *FAST], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    with Image.open(out) as im:
        assert im.size == ((24, 32) if name == "exif6.jpg" else (32, 24))
    if name.startswith("animated"):
        assert f"impasto: note: {corpus / name}: has 3 frames" in err and "first frame" in err
        assert any("first frame" in n for n in read_recipe(out)["notes"])


def test_load_image_from_bytes_and_pil():
    base = _base()
    assert np.array_equal(_arr(load_image(_encode(base, "PNG")).image), _arr(base))
    assert load_image(base.convert("LA")).image.mode == "RGB"
    with pytest.raises(ImageError, match="<upload>: no data"):
        load_image(b"")


# -- URLs: a local server ----------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    png = b""

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, ctype: str, body: bytes, length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client gave up (the timeout test)
            pass

    def do_GET(self) -> None:  # http.server's name
        html = b"<!DOCTYPE html><html><body>Sign in to see this picture</body></html>"
        if self.path == "/img.png":
            self._send(200, "image/png", self.png)
        elif self.path == "/page":
            self._send(200, "text/html; charset=utf-8", html)
        elif self.path == "/page-as-octets":
            self._send(200, "application/octet-stream", html)
        elif self.path == "/huge":
            self._send(200, "image/png", self.png, length=10**9)  # declares 1 GB
        elif self.path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                for _ in range(2000):
                    self.wfile.write(b"\0" * 4096)
            except OSError:
                pass
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(200, "image/png", self.png)
        elif self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/img.png" if self.path == "/redirect" else "/page")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, "text/plain", b"not found")


@pytest.fixture(scope="module")
def server():
    _Handler.png = _encode(sample_content(48, 36, seed=1), "PNG")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


URLS = [
    ("returns html", "/page", ["text/html", "not an image"]),
    ("returns html as octets", "/page-as-octets", ["web page"]),
    ("redirect to html", "/redirect-to-page", ["text/html"]),
    ("404", "/nothing.png", ["HTTP 404"]),
    ("declares 1 GB", "/huge", ["larger than"]),
    ("endless body (size cap)", "/endless", ["larger than"]),
    ("too slow (timeout)", "/slow", ["timed out"]),
    ("unreachable", None, ["cannot be fetched"]),
]


@pytest.mark.parametrize("case", URLS, ids=[c[0] for c in URLS])
def test_bad_url_is_one_line_exit_2(case, server, corpus, tmp_path, capsys, monkeypatch):
    _, path, needles = case
    url = f"{server}{path}" if path else f"http://127.0.0.1:{_closed_port()}/img.png"
    monkeypatch.setattr(impasto.io.fetch, "URL_TIMEOUT", 0.5)
    monkeypatch.setattr(impasto.io.fetch, "URL_MAX_BYTES", 1_000_000)
    monkeypatch.setattr(impasto.api, "load_vgg", _must_not_run)
    out = tmp_path / "out.png"
    code, err = _run(["stylize", url, str(corpus / "style.png"), "-o", str(out), *FAST], capsys)
    assert code == 2, err
    _assert_one_line_error(err, url, *needles)
    assert not out.exists()


def test_good_url_and_redirect_load(server):
    for path in ("/img.png", "/redirect"):
        assert load_image(f"{server}{path}").image.size == (48, 36)


# -- bad settings --------------------------------------------------------------------------------------------------------
BAD_FLAGS = [
    (["--content-weight", "-1"], ["content_weight = -1.0", ">= 0"]),
    (["--style-weight", "nan"], ["style_weight = nan", "finite"]),
    (["--tv-weight=-inf"], ["tv_weight = -inf", "finite"]),
    (["--lr", "0"], ["lr = 0.0", "> 0"]),
    (["--lr", "-0.5"], ["lr = -0.5", "> 0"]),
    (["--steps", "0"], ["steps = 0", "> 0"]),
    (["--steps", "-3"], ["steps = -3", "> 0"]),
    (["--steps", "2.5"], ["steps = '2.5'", "whole number"]),
    (["--first-steps", "0"], ["first_steps = 0", "> 0"]),
    (["--size", "0"], ["size = 0", "> 0"]),
    (["--size", "-5"], ["size = -5", "> 0"]),
    (["--size", "100000"], ["size = 100000", "16384"]),
    (["--seed", "1e30"], ["seed = ", "2**63"]),
    (["--content-layers", "relu9_9"], ["content_layers", "'relu9_9'", "valid layers: conv1_1"]),
    (["--style-layers", "relu1_1:1,conv7_1:2"], ["style_layers", "'conv7_1'", "did you mean conv5_1"]),
    (["--style-layers", "relu1_1:-1"], ["style_layers", "-1.0", ">= 0"]),
    (["--style-blend", "1"], ["style_blend = 1.0", "2 style image(s)", "one weight per style image"]),
    (["--style-blend", "0,0"], ["style_blend = '0.0,0.0'", "not all 0"]),
    (["--style-blend", "0.2;0.8"], ["style_blend = '0.2;0.8'", "number"]),
    (["--shape", "300x"], ["shape = '300x'", "HEIGHTxWIDTH"]),
    (["--preset", "nope"], ["--preset", "'nope'", "gatys-adam"]),
    (["--optimizer", "sgd"], ["optimizer = 'sgd'", "adam, lbfgs"]),
    (["--device", "tpu"], ["device = 'tpu'", "cuda:N"]),
    (["--weights", "nowhere.pt"], ["nowhere.pt", "no such file", "bundled"]),
]


@pytest.mark.parametrize("flags, needles", BAD_FLAGS, ids=[" ".join(f[0]) for f in BAD_FLAGS])
def test_bad_setting_is_one_line_exit_2(flags, needles, corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(impasto.api, "optimize", _must_not_run)
    out = tmp_path / "out.png"
    style = str(corpus / "style.png")
    code, err = _run(["stylize", str(corpus / "content.png"), style, style, "-o", str(out), *FAST, *flags], capsys)
    assert code == 2, err
    _assert_one_line_error(err, *needles)
    assert not out.exists()


BAD_TOML = [
    ("syntax error", b'size = 32\nsteps = [1\n', ["cfg.toml:2:", "TOML syntax error"]),
    ("syntax error mid-file", b'size = 32\nlr = = 2\nsteps = 3\n', ["cfg.toml:2:", "TOML syntax error"]),
    ("unknown key", b'size = 32\n\nstyle_wieght = 3\n', ["cfg.toml:3:", "'style_wieght'", "did you mean 'style_weight'"]),
    ("bad value", b'size = 32\nlr = -2\n', ["cfg.toml:2:", "lr = -2.0", "> 0"]),
    ("nan weight", b'style_weight = nan\n', ["cfg.toml:1:", "style_weight = nan"]),
    ("unknown layer", b'size = 32\nstyle_layers = "relu1_1,relu9_1"\n', ["cfg.toml:2:", "'relu9_1'"]),
    ("unknown preset", b'preset = "fast"\n', ["cfg.toml:1:", "preset = 'fast'", "gatys-adam"]),
    ("wrong type", b'size = 32\ncontent_layers = 4.5\n', ["cfg.toml:2:", "content_layers", "layer"]),
    ("not UTF-8", b'size = 32\n# caf\xe9\n', ["cfg.toml:2:", "not UTF-8"]),
]


@pytest.mark.parametrize("case", BAD_TOML, ids=[c[0] for c in BAD_TOML])
def test_bad_toml_names_file_line_key_and_value(case, corpus, tmp_path, capsys):
    _, text, needles = case
    cfg = tmp_path / "cfg.toml"
    cfg.write_bytes(text)
    out = tmp_path / "out.png"
    code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o", str(out), *FAST,
                      "--config", str(cfg)], capsys)
    assert code == 2, err
    _assert_one_line_error(err, *needles)
    assert not out.exists()


def test_blend_accepts_commas_and_spaces():
    for text in ("0.2,0.8", "0.2, 0.8", " 0.2 0.8 "):
        assert from_dict({"style_blend": text}).style_blend == (0.2, 0.8)


def test_missing_config_file(corpus, tmp_path, capsys):
    code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o",
                      str(tmp_path / "o.png"), "--config", str(tmp_path / "none.toml")], capsys)
    assert code == 2
    _assert_one_line_error(err, "none.toml", "no such config file")


# -- outputs: refused before the run starts ----------------------------------------------------------------------------
def test_output_problems_are_caught_before_the_run(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(impasto.api, "load_vgg", _must_not_run)
    monkeypatch.setattr(impasto.api, "optimize", _must_not_run)
    c, s = str(corpus / "content.png"), str(corpus / "style.png")
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"precious")
    readonly = tmp_path / "readonly.png"
    readonly.write_bytes(b"keep")
    readonly.chmod(0o444)
    (tmp_path / "adir.png").mkdir()
    cases = [
        ([str(tmp_path / "no" / "such" / "o.png")], ["does not exist"]),
        ([str(tmp_path / "o.txt")], ["o.txt", "unknown image extension '.txt'", ".png, .jpg"]),
        ([str(tmp_path / "o.gif")], ["unknown image extension '.gif'"]),
        ([str(tmp_path / "noext")], ["noext", "no image extension"]),
        ([""], ["give a file name"]),
        ([str(tmp_path / "adir.png"), "--force"], ["adir.png", "is a directory"]),
        ([str(existing)], ["existing.png", "already exists", "--force"]),
        ([str(readonly), "--force"], ["readonly.png", "read-only"]),
        ([s, "--force"], ["style.png", "is also the style image"]),
        ([c, "--force"], ["content.png", "is also the content image"]),
    ]
    if sys.platform.startswith("linux"):
        cases.append((["/proc/impasto-test.png"], ["cannot write in the folder /proc"]))
    for argv, needles in cases:
        code, err = _run(["stylize", c, s, "-o", *argv, *FAST], capsys)
        assert code == 2, (argv, err)
        _assert_one_line_error(err, *needles)
    assert existing.read_bytes() == b"precious" and readonly.read_bytes() == b"keep"
    assert (corpus / "style.png").stat().st_size > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.png", "existing.png", "readonly.png"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder(corpus, tmp_path, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o",
                          str(folder / "o.png"), *FAST], capsys)
    finally:
        folder.chmod(0o755)
    assert code == 2
    _assert_one_line_error(err, "o.png", "cannot write in the folder")


def test_force_overwrites_and_output_has_normal_permissions(corpus, tmp_path, capsys):
    out = tmp_path / "out.png"
    out.write_bytes(b"old")
    code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o", str(out), *FAST,
                      "--force"], capsys)
    assert code == 0, err
    with Image.open(out) as im:
        assert im.size == (32, 24)
    fresh = tmp_path / "fresh.png"
    assert main(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o", str(fresh), *FAST]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_interrupted_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old picture")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new picture")
    assert target.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


# -- resources ---------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(corpus, tmp_path, capsys):
    code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o",
                      str(tmp_path / "o.png"), *FAST, "--device", "cuda"], capsys)
    assert code == 2
    _assert_one_line_error(err, "--device cuda", "no CUDA", "--device cpu")


def test_memory_estimate_refuses_with_a_suggestion(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(impasto.preflight, "available_memory", lambda device: 2**30)
    monkeypatch.setattr(impasto.api, "load_vgg", _must_not_run)
    code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o",
                      str(tmp_path / "o.png"), *FAST, "--size", "1200", "--style-layers", "relu5_1"], capsys)
    assert code == 2
    _assert_one_line_error(err, "needs about", "GiB", "use --size")
    # A huge style (style_scale) is checked too, not only the content.
    code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o",
                      str(tmp_path / "o.png"), *FAST, "--shape", "16x1000", "--style-scale", "1.5"], capsys)
    assert code == 2
    _assert_one_line_error(err, "style image", "--style-scale")


def test_sizes_vgg_cannot_take_are_refused(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(impasto.api, "load_vgg", _must_not_run)
    thin = tmp_path / "thin.png"
    sample_content(400, 10).save(thin)
    c, s, o = str(corpus / "content.png"), str(corpus / "style.png"), str(tmp_path / "o.png")
    deep = ["--style-layers", "relu1_1,relu5_1"]
    for inputs, flags, needles in [
        ([str(thin), s], [], ["thin.png", "32x1", "relu5_1 needs at least 16 px"]),
        ([c, str(thin)], [], ["thin.png", "as a style"]),
        ([c, s], ["--size", "16"], ["16x12", "--size"]),
        ([c, s], ["--size", "64", "--start-size", "16"], ["first scale", "--start-size"]),
    ]:
        code, err = _run(["stylize", *inputs, "-o", o, *FAST, *deep, *flags], capsys)
        assert code == 2, err
        _assert_one_line_error(err, *needles)


# -- divergence ----------------------------------------------------------------------------------------------------------
def _nan_at(monkeypatch, k: int) -> None:
    """Make the loss NaN at the k-th evaluation (one per Adam step)."""
    original = impasto.core.optimize.Objective.__call__
    calls = [0]

    def poisoned(self, img):
        terms = original(self, img)
        calls[0] += 1
        if calls[0] == k:
            terms = {**terms, "total": terms["total"] * float("nan")}
        return terms

    monkeypatch.setattr(impasto.core.optimize.Objective, "__call__", poisoned)


@pytest.mark.parametrize("ema", [None, 0.5])
def test_nan_keeps_the_last_finite_image(ema, corpus, monkeypatch):
    _nan_at(monkeypatch, 4)
    seen: dict[int, Image.Image] = {}
    cfg = from_dict({"size": 32, "start_size": None, "first_steps": None, "steps": 10, "ema": ema,
                     "content_layers": "relu2_1", "style_layers": "relu1_1,relu2_1"})
    result = impasto.api.stylize(corpus / "content.png", corpus / "style.png", cfg, progress=False,
                                 callback=lambda step: seen.__setitem__(step.step, step.image()))
    assert result.status == "diverged" and "step 4" in result.message and "lbfgs" in result.message
    assert sorted(seen) == [1, 2, 3] and len(result.history) == 3
    assert all(torch.isfinite(t).all() for t in result.state.images)
    assert np.array_equal(np.asarray(result.image), np.asarray(seen[3]))


def test_nan_at_a_new_scale_keeps_that_scales_size(corpus, monkeypatch):
    _nan_at(monkeypatch, 3)  # the first step of the second scale (scales: 16x12, 23x17, 32x24)
    cfg = from_dict({"size": 32, "start_size": 16, "first_steps": 2, "steps": 2,
                     "content_layers": "relu2_1", "style_layers": "relu1_1,relu2_1"})
    result = impasto.api.stylize(corpus / "content.png", corpus / "style.png", cfg, progress=False)
    assert result.status == "diverged" and "step 3" in result.message
    assert result.image.size == (23, 17)  # the restored pixels at the scale it failed in, not the previous scale's


def test_cli_divergence_exits_1_with_the_hint_and_keeps_a_finite_image(corpus, tmp_path, capsys):
    out = tmp_path / "out.png"
    code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o", str(out), *FAST,
                      "--steps", "5", "--param", "normalized", "--lr", "1e30"], capsys)
    assert code == 1, err
    _assert_one_line_error(err, "NaN", "kept the last finite image", "lower the learning rate", "lbfgs", "out.png")
    recipe = read_recipe(out)
    assert recipe["status"] == "diverged"
    assert all(math.isfinite(v) for v in recipe["final_losses"].values())


# -- Ctrl-C and --resume (a real process) --------------------------------------------------------------------------------
RESUMABLE = ["--size", "32", "--start-size", "none", "--first-steps", "none", "--steps", "20", "--seed", "7",
             "--content-layers", "relu2_1", "--style-layers", "relu1_1,relu2_1", "-q"]


def _impasto(*args: str) -> list[str]:
    return [sys.executable, "-m", "impasto", *args]


# One thread: on a shared, loaded CI machine a second one makes these tiny steps several times slower.
_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            pytest.fail(f"impasto ended (code {proc.returncode}) before it could be interrupted")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("impasto made no progress")
        time.sleep(0.02)


class _OneThread:
    """Run in-process steps on one thread, as the subprocesses do (same arithmetic; faster on a loaded machine)."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.threads)


def test_sigint_saves_image_and_checkpoint_and_resume_matches(corpus, tmp_path, capsys):
    c, s = str(corpus / "content.png"), str(corpus / "style.png")
    out = tmp_path / "part.png"
    errfile = tmp_path / "stderr.txt"
    with open(errfile, "wb") as ef:
        proc = subprocess.Popen(_impasto("stylize", c, s, "-o", str(out), *RESUMABLE, "--save-every", "1"),
                                stderr=ef, stdout=subprocess.DEVNULL, env=_ENV)
        _wait_for(lambda: (tmp_path / "part.step00002.png").exists(), proc)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    err = errfile.read_text()
    assert code == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted by SIGINT" in err and "--resume" in err

    # The image and the checkpoint are there and agree with each other.
    ckpt = tmp_path / "part.png.ckpt"
    data = load_checkpoint(ckpt)
    done = data["state"]["step"]
    assert 2 <= done < 20 and data["state"]["status"] == "cancelled"
    recipe = read_recipe(out)
    assert recipe["status"] == "cancelled" and recipe["steps_done"] == done
    with Image.open(out) as a, Image.open(tmp_path / f"part.step{done:05d}.png") as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))  # the image saved is the last step's

    # Resuming with other settings is refused, naming what differs.
    code, err2 = _run(["stylize", c, s, "-o", str(out), *RESUMABLE, "--style-weight", "3", "--resume"], capsys)
    assert code == 2
    _assert_one_line_error(err2, "part.png.ckpt", f"style_weight {StyleConfig().style_weight} (now 3.0)")

    # --resume finishes the run (save_every may differ: it does not change the pixels) ...
    with _OneThread():
        code, err3 = _run(["stylize", c, s, "-o", str(out), *RESUMABLE, "--resume"], capsys)
        assert code == 0, err3
        assert not ckpt.exists()
        assert read_recipe(out)["steps_done"] == 20
        # ... to the same pixels as an uninterrupted run with the same seed (Adam is deterministic on CPU).
        cfg = from_dict({"size": 32, "start_size": None, "first_steps": None, "steps": 20, "seed": 7,
                         "content_layers": "relu2_1", "style_layers": "relu1_1,relu2_1"})
        straight = impasto.api.stylize(c, s, cfg, progress=False)
    with Image.open(out) as resumed:
        diff = np.abs(np.asarray(resumed, dtype=np.int16) - np.asarray(straight.image, dtype=np.int16))
    assert diff.max() <= 2, diff.max()


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX")
def test_sigterm_saves_image_and_checkpoint(corpus, tmp_path, capsys, monkeypatch):
    """The same handler as Ctrl-C; in-process (a real signal to this process, while the CLI's handler is in place)."""
    original = impasto.core.optimize.Objective.__call__
    calls = [0]

    def term_at_third_step(self, img):
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, img)

    monkeypatch.setattr(impasto.core.optimize.Objective, "__call__", term_at_third_step)
    out = tmp_path / "t.png"
    before = signal.getsignal(signal.SIGTERM)
    with _OneThread():
        code, err = _run(["stylize", str(corpus / "content.png"), str(corpus / "style.png"), "-o", str(out),
                          *RESUMABLE], capsys)
    assert code == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted by SIGTERM" in err and "--resume" in err
    data = load_checkpoint(tmp_path / "t.png.ckpt")
    assert data["state"]["step"] == 3 and read_recipe(out)["steps_done"] == 3
    assert signal.getsignal(signal.SIGTERM) == before  # the CLI put the previous handler back


def test_damaged_checkpoint_is_one_line(corpus, tmp_path, capsys):
    c, s = str(corpus / "content.png"), str(corpus / "style.png")
    out = tmp_path / "o.png"
    out.write_bytes(b"x")
    ckpt = tmp_path / "o.png.ckpt"
    state = {"images": [torch.zeros(1, 3, 24, 32)], "step": 1, "scale": 0, "scale_step": 1, "history": [[]]}
    future = {"format": 1, "state": state, "config": {"size": 32, "brush": 3}, "fingerprint": "0"}  # another version
    for blob in (b"garbage", _torch_bytes({"format": 1}), _torch_bytes([1, 2]), _torch_bytes(future)):
        ckpt.write_bytes(blob)
        code, err = _run(["stylize", c, s, "-o", str(out), *FAST, "--resume"], capsys)
        assert code == 2
        _assert_one_line_error(err, "o.png.ckpt", "start afresh")


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# -- property-based: never an unhandled exception ----------------------------------------------------------------------
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400), st.floats(),
    st.text(max_size=10),
    st.sampled_from(["none", "relu1_1", "relu4_2:2", "21", "300x400", "3x", "adam", "lbfgs", "nan", "-inf", "1e999",
                     "gatys-adam", "0.5,0.5", "0,0", "relu1_1:1,relu1_1:2", "cuda", "noise", ""]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6)
# Mostly real keys (an unknown key is refused first, which would hide what the values do), now and then a wrong one.
_keys = st.sampled_from([*FIELD_NAMES, *FIELD_NAMES, "style_wieght", "colour", ""])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=4))
def test_config_from_random_values_is_a_config_or_a_config_error(data):
    try:
        cfg = from_dict(data)
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert isinstance(cfg, StyleConfig)
    assert from_dict(cfg.to_dict()) == cfg  # and a valid config round-trips
    json.dumps(cfg.to_dict())


_MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM", b"II*\x00",
          b"MM\x00*", b"\x00\x00\x01\x00", b"P6\n", b"8BPS"]
_VALID = [_encode(sample_content(24, 16, seed=3), fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")]


def _load_or_image_error(data: bytes) -> None:
    try:
        loaded = load_image(data, max_pixels=4_000_000)
    except ImageError as e:
        assert "\n" not in str(e) and str(e).startswith("<upload>")
        return
    assert loaded.image.mode == "RGB" and min(loaded.image.size) >= 8


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=256), st.tuples(st.sampled_from(_MAGIC), st.binary(max_size=256)).map(
    lambda t: t[0] + t[1])))
def test_loader_on_random_bytes(data):
    _load_or_image_error(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_VALID), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1,
                                         max_size=8), st.integers(0, 10**6))
def test_loader_on_damaged_images(blob, edits, cut):
    data = bytearray(blob)
    for pos, value in edits:
        data[pos % len(data)] = value
    _load_or_image_error(bytes(data[: max(1, len(data) - cut % len(data))]))
