"""What an artist takes away, without a run: TIFF/WebP/PNG/JPEG writers (8 and 16 bits, alpha, sRGB, DPI), the recipe
in each read back as a stranger's, colour profiles converted on the way in, print sizes and their one-line errors.
Oracles: independent readers (tifffile, OpenCV for 16-bit PNG, Pillow), a numpy colour conversion (iccbuild)."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from iccbuild import ADOBE_GAMMA, ADOBE_PRIMARIES, P3_PRIMARIES, SRGB_CURVE, cmyk_profile, rgb_profile, to_srgb
from impasto import StyleConfig
from impasto.errors import ConfigError, ImageError, OutputError
from impasto.io.encode import quantise
from impasto.io.images import load_image
from impasto.io.profiles import srgb_icc
from impasto.io.recipe import read_recipe, save_image
from impasto.outputs import check_format, cover_box, parse_print

RECIPE = {"status": "done", "config": {"size": 64, "print_size": "2x1in@32dpi"}, "notes": ["née <&> \u2603"]}


def _ramp(h: int = 24, w: int = 40, alpha: bool = True) -> np.ndarray:
    """Smooth floats in [0, 1] with thousands of distinct values (a 16-bit file must keep them)."""
    y, x = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    chans = [x, y, (x + y) / 2] + ([1 - x * 0.9] if alpha else [])
    return np.stack(chans, -1).astype(np.float32)


def _opaque_srgb(im: Image.Image) -> None:
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))).strip() \
        == ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(srgb_icc()))).strip()


@pytest.mark.parametrize("ext", [".png", ".tif", ".tiff", ".webp", ".jpg"])
def test_every_format_carries_the_recipe_srgb_and_alpha(tmp_path, ext):
    pic = _ramp(alpha=ext != ".jpg")
    p = save_image(pic, tmp_path / f"out{ext}", RECIPE, dpi=None if ext == ".webp" else 300)
    assert read_recipe(p) == RECIPE  # non-ASCII and XML's <&> survive every container
    with Image.open(p) as im:
        _opaque_srgb(im)
        got = np.asarray(im.convert("RGBA" if ext != ".jpg" else "RGB"), dtype=np.float64)
        if ext != ".webp":
            assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    want = quantise(pic, 8).astype(np.float64)
    if ext in (".png", ".tif", ".tiff"):
        assert np.array_equal(got, want)  # lossless, alpha included
    else:
        assert np.abs(got - want)[..., :3].mean() < 3
        if ext == ".webp":
            assert np.array_equal(got[..., 3], want[..., 3])  # WebP keeps alpha losslessly


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_files_read_back_at_16_bits(tmp_path, ext):
    pic = np.random.default_rng(0).random((24, 40, 4), dtype=np.float32)
    p = save_image(pic, tmp_path / f"deep{ext}", RECIPE, bit_depth=16, dpi=254)
    if ext == ".png":
        got = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]]  # OpenCV: BGRA
    else:
        got = tifffile.imread(p)
        with tifffile.TiffFile(p) as tf:
            page = tf.pages[0]
            assert page.tags["XResolution"].value == (2540000, 10000) and page.tags["ResolutionUnit"].value == 2
            assert page.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)
    assert got.dtype == np.uint16 and np.array_equal(got, quantise(pic, 16))
    assert len(np.unique(got[..., 0])) > 256  # more levels than 8 bits can hold
    assert np.abs(got / 65535 - pic).max() <= 0.5 / 65535 + 1e-7  # quantised once, to nearest
    with Image.open(p) as im:
        assert im.info["dpi"] == pytest.approx((254, 254), abs=0.01)
    assert read_recipe(p) == RECIPE


@pytest.mark.parametrize("ext", [".png", ".tif", ".webp"])
def test_a_permuted_view_is_written_as_its_values(tmp_path, ext):
    """What Result hands over: a (C, H, W) tensor's permuted numpy view, not contiguous."""
    chw = np.random.default_rng(1).random((4, 12, 20), dtype=np.float32)
    view = chw.transpose(1, 2, 0)
    assert not view.flags["C_CONTIGUOUS"]
    p = save_image(view, tmp_path / f"v{ext}", bit_depth=8 if ext == ".webp" else 16)
    if ext == ".webp":
        with Image.open(p) as im:
            got = np.asarray(im)
    else:
        got = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]] if ext == ".png" else tifffile.imread(p)
    assert np.array_equal(got[..., 3], quantise(view, 8 if ext == ".webp" else 16)[..., 3])


def test_a_pil_picture_at_16_bits_is_its_8_bits_scaled(tmp_path):
    im = Image.fromarray(quantise(_ramp(alpha=False), 8))
    got = tifffile.imread(save_image(im, tmp_path / "x.tif", bit_depth=16))
    assert np.array_equal(got, np.asarray(im).astype(np.uint16) * 257)


def test_formats_that_cannot_hold_the_result_are_refused_in_one_line(tmp_path):
    for fmt in ("JPEG", "WEBP"):
        with pytest.raises(OutputError, match="8 bits a channel, not 16; write .png or .tif") as e:
            check_format(tmp_path / "a", fmt, bit_depth=16, transparent=False)
        assert "\n" not in str(e.value)
    with pytest.raises(OutputError, match=r"transparent.*\.png, \.webp or \.tif.*--background"):
        check_format(tmp_path / "a.jpg", "JPEG", bit_depth=8, transparent=True)
    check_format(tmp_path / "a.webp", "WEBP", bit_depth=8, transparent=True)  # fine
    with pytest.raises(OutputError, match="JPEG holds 8 bits"):
        save_image(_ramp(alpha=False), tmp_path / "b.jpg", bit_depth=16)
    with pytest.raises(OutputError, match="cannot hold transparency"):
        save_image(_ramp(), tmp_path / "b.jpg")
    with pytest.raises(OutputError, match=r"unknown image extension '.bmp'; use .png, .jpg, .tif or .webp"):
        save_image(_ramp(), tmp_path / "b.bmp")
    assert not list(tmp_path.iterdir())


# -- recipes read as a stranger's -----------------------------------------------------------------------------------
def _tiff_with_xmp(xmp: bytes, *, offset: int | None = None, count: int | None = None) -> bytes:
    """A 1-pixel TIFF whose tag 700 holds ``xmp`` (or claims ``count`` bytes at ``offset``)."""
    entries = [(256, 4, 1, 1), (257, 4, 1, 1), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1),
               (278, 4, 1, 1), (279, 4, 1, 1)]
    ifd_at = 10
    data_at = ifd_at + 2 + 12 * (len(entries) + 1) + 4
    entries.append((700, 7, count if count is not None else len(xmp), offset if offset is not None else data_at))
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
    return b"II*\0" + struct.pack("<I", ifd_at) + b"\x80\0" + ifd + xmp


def _xmp(body: str) -> bytes:
    return f"<x:xmpmeta><impasto:recipe>{body}</impasto:recipe></x:xmpmeta>".encode()


@pytest.mark.parametrize(("data", "message"), [
    (_tiff_with_xmp(_xmp('{"status": "done"}')), None),
    (_tiff_with_xmp(_xmp("&lt;not json&gt;")), "not valid JSON"),
    (_tiff_with_xmp(_xmp("&xxe;")), "not valid JSON"),  # entities are never expanded
    (_tiff_with_xmp(_xmp('["a list"]')), "not what impasto writes"),
    (_tiff_with_xmp(b"", offset=10**6, count=100), "runs past the end of the file"),
    (_tiff_with_xmp(b"", count=50 * 2**20), "over 4 MB"),
    (_tiff_with_xmp(b"<x:xmpmeta/>"), "carries no impasto recipe"),
])
def test_a_strangers_tiff_recipe_is_a_one_line_error(tmp_path, data, message):
    p = tmp_path / "s.tif"
    p.write_bytes(data)
    if message is None:
        assert read_recipe(p) == {"status": "done"}
        return
    with pytest.raises(ImageError, match=message) as e:
        read_recipe(p)
    assert "\n" not in str(e.value)


def test_webp_and_jpeg_without_a_recipe_say_so(tmp_path):
    for ext in (".webp", ".jpg"):
        p = tmp_path / f"plain{ext}"
        Image.new("RGB", (16, 16), "red").save(p, xmp=_xmp("{}") if ext == ".jpg" else b"<x/>")
        if ext == ".jpg":
            assert read_recipe(p) == {}
        else:
            with pytest.raises(ImageError, match="carries no impasto recipe"):
                read_recipe(p)


# -- colour profiles in ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "primaries", "curve"), [("Display P3 (test)", P3_PRIMARIES, SRGB_CURVE),
                                                           ("Adobe RGB (test)", ADOBE_PRIMARIES, ADOBE_GAMMA)])
def test_a_wide_gamut_photo_is_converted_to_srgb_where_its_profile_says(name, primaries, curve):
    colours = np.array([[200, 120, 80], [90, 150, 200], [128, 128, 128], [250, 240, 30]], np.uint8)
    px = np.repeat(colours[None], 16, 0).repeat(8, 1)  # (16, 32, 3): 8 columns per colour
    rgba = np.dstack([px, np.full(px.shape[:2], 200, np.uint8)])
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG", icc_profile=rgb_profile(name, primaries, curve))
    loaded = load_image(buf.getvalue())
    got = np.asarray(loaded.image, dtype=np.float64)[0, ::8]
    # the alpha is kept, and the RGB the engine sees is the converted colour over white
    assert np.array_equal(np.asarray(loaded.alpha), np.full(px.shape[:2], 200))
    want = to_srgb(colours, primaries, curve) * 200 / 255 + 255 * 55 / 255
    assert np.abs(got - want).max() <= 1.5
    unconverted = colours * 200 / 255 + 255 * 55 / 255
    assert np.abs(unconverted - want).max() > 6  # the test can tell a conversion from none
    assert any("converted from its colour profile" in n for n in loaded.notes)
    small = load_image(buf.getvalue(), keep=8)  # the web's decode at reduced size converts as well
    assert small.image.width < 32 and np.abs(np.asarray(small.image, dtype=np.float64)[0, 0] - want[0]).max() <= 1.5


def test_an_unreadable_profile_is_a_note_and_the_pixels_are_taken_as_srgb():
    px = np.array([[[200, 120, 80]]], np.uint8).repeat(8, 0).repeat(8, 1)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, "PNG", icc_profile=b"not a profile at all, just bytes" * 4)
    loaded = load_image(buf.getvalue(), name="odd.png")
    assert np.array_equal(np.asarray(loaded.image), px)
    [note] = [n for n in loaded.notes if "colour profile" in n]
    assert note.startswith("odd.png: its colour profile cannot be read") and note.endswith("taking the image as sRGB")


def test_an_srgb_profile_changes_nothing():
    px = (np.arange(8 * 8 * 3) % 256).astype(np.uint8).reshape(8, 8, 3)
    buf = io.BytesIO()
    Image.fromarray(px).save(buf, "PNG", icc_profile=srgb_icc())
    loaded = load_image(buf.getvalue())
    assert np.array_equal(np.asarray(loaded.image), px) and not loaded.notes


# -- print sizes -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "pixels", "dpi"), [
    ("20x30cm@300dpi", (2362, 3543), 300), ("30x40cm@300dpi", (3543, 4724), 300), ("8x10in@300dpi", (2400, 3000), 300),
    ("210 x 297 mm @ 150dpi", (1240, 1754), 150), ("2x1.5in@32", (64, 48), 32), ("4X3IN@72DPI", (288, 216), 72),
])
def test_print_sizes_in_pixels(text, pixels, dpi):
    p = parse_print(text)
    assert p.pixels == pixels and p.dpi == dpi and p.shape == pixels[::-1]
    assert StyleConfig(print_size=text).result_size(1000, 10) == pixels[::-1]  # the photo's shape does not matter


@pytest.mark.parametrize(("text", "message"), [
    ("20x30cm@0dpi", "the DPI must be more than 0"), ("20x30ft@300dpi", "unknown unit 'ft'; use cm, mm or in"),
    ("20x30@300dpi", "no unit after the size"), ("20cm@300dpi", "write WIDTHxHEIGHT in cm, mm or in at a DPI"),
    ("0x30cm@300dpi", "the width and the height must be more than 0"), ("200x300cm@300dpi", "over 16384 a side"),
    ("1x1mm@72dpi", "under 16 a side"), ("1.2.3x4cm@300dpi", "write WIDTHxHEIGHT"),
])
def test_bad_print_sizes_are_one_line(text, message):
    with pytest.raises(ConfigError, match=message) as e:
        StyleConfig(print_size=text)
    assert e.value.key == "print_size" and "\n" not in str(e.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("bit_depth", 12, "choose 8 or 16"), ("bit_depth", 0, "choose 8 or 16"),
    ("background", "not-a-colour", "give a colour name"), ("background", "#12345", "give a colour name"),
])
def test_bad_output_settings_are_one_line(field, value, message):
    with pytest.raises(ConfigError, match=message) as e:
        StyleConfig(**{field: value})
    assert e.value.key == field


def test_a_print_crops_the_photo_to_its_proportions_centred():
    assert cover_box(400, 300, (300, 400)) == (0.0, 0.0, 1.0, 1.0)
    left, top, right, bottom = cover_box(400, 300, (400, 400))  # square print of a 4:3 photo: trim the sides
    assert (top, bottom) == (0.0, 1.0) and left == pytest.approx(0.125) and right == pytest.approx(0.875)
    assert cover_box(300, 400, (300, 400))[1] == pytest.approx(0.21875)  # a portrait photo on landscape paper


def test_the_done_when_print_is_2362_by_3543_with_its_dpi_and_recipe(tmp_path):
    """The issue's print through the writer it uses (no 2362×3543 optimisation: the pure size, then the file)."""
    w, h = parse_print("20x30cm@300dpi").pixels
    picture = np.broadcast_to(np.linspace(0, 1, w, dtype=np.float32)[None, :, None], (h, w, 3))
    p = save_image(picture, tmp_path / "print.tif", {"config": {"print_size": "20x30cm@300dpi"}}, bit_depth=16,
                   dpi=parse_print("20x30cm@300dpi").dpi)
    with tifffile.TiffFile(p) as tf:
        page = tf.pages[0]
        assert (page.imagewidth, page.imagelength, page.bitspersample) == (2362, 3543, 16)
        assert page.tags["XResolution"].value == (3000000, 10000)
    assert read_recipe(p)["config"]["print_size"] == "20x30cm@300dpi"


def test_a_profile_of_another_colour_space_is_a_note_not_a_failure():
    """A CMYK JPEG that carries an RGB profile: the profile cannot apply, the CMYK is converted as without one."""
    buf = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(buf, "JPEG", icc_profile=rgb_profile("RGB", P3_PRIMARIES,
                                                                                             SRGB_CURVE))
    loaded = load_image(buf.getvalue(), name="press.jpg")
    assert np.abs(np.asarray(loaded.image, dtype=np.float64)[8, 8] - [255, 0, 0]).max() < 8
    assert any(n.startswith("press.jpg: its colour profile (RGB) does not fit its CMYK pixels") for n in loaded.notes)


def test_a_cmyk_jpeg_goes_through_its_press_profile():
    """Cyan and magenta ink land where the profile says (a real press's, not the naive 0,255,255 and 255,0,255);
    black and paper too."""
    icc = cmyk_profile("Press (test)", {(1, 0, 0, 0): (0, 158, 224), (0, 1, 0, 0): (236, 0, 140)})
    px = np.zeros((16, 32, 4), np.uint8)
    px[:, :8, 0] = 255
    px[:, 8:16, 1] = 255
    px[:, 16:24, 3] = 255
    buf = io.BytesIO()
    Image.fromarray(px, "CMYK").save(buf, "JPEG", icc_profile=icc, quality=100)
    loaded = load_image(buf.getvalue(), name="press.jpg")
    got = np.asarray(loaded.image, dtype=np.float64)[8, [4, 12, 20, 28]]
    assert np.abs(got - [[0, 158, 224], [236, 0, 140], [0, 0, 0], [255, 255, 255]]).max() <= 3
    assert loaded.notes == ["press.jpg: converted from its colour profile (Press (test)) to sRGB"]
