"""Colour profiles: an input's embedded ICC profile (Display P3, Adobe RGB, a CMYK press profile, ...) converts its
pixels to sRGB before anything else is done to them, and every output embeds the sRGB profile.

VGG was trained on sRGB photos and every output is sRGB, so reading a wide-gamut photo's numbers as if they were sRGB
dulls its colours twice over (crowsonkb/style-transfer-pytorch converts the same way). The conversion is LittleCMS's
(Pillow's ImageCms) with the perceptual intent, which for the matrix profiles of cameras and screens is colorimetric,
and for CMYK press profiles maps their gamut rather than clipping it. A profile that cannot be read, or that does not
fit the image's colour mode, is a one-line note and the pixels are taken as sRGB: never a refusal for metadata.
"""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageCms

# Modes a profile can convert from (their alpha is split off first and put back after).
_BASE = {"RGB": "RGB", "RGBA": "RGB", "RGBX": "RGB", "CMYK": "CMYK", "L": "L", "LA": "L", "P": "RGB", "PA": "RGB"}
_ALPHA = ("RGBA", "LA", "PA")


@functools.lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def srgb_icc() -> bytes:
    """The sRGB ICC profile (LittleCMS's built-in, ~600 bytes) that outputs embed."""
    return _srgb().tobytes()


def _first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:120]


def describe(profile: ImageCms.ImageCmsProfile) -> str:
    try:
        return ImageCms.getProfileDescription(profile).strip() or "unnamed"
    except Exception:  # a profile without a description tag
        return "unnamed"


def to_srgb(im: Image.Image, name: str, notes: list[str]) -> Image.Image:
    """``im`` with its embedded profile applied (a new image, its pixels sRGB, RGB or RGBA), or ``im`` itself when it
    has none, when the profile is sRGB, or when it cannot be used (then with a note in ``notes``). Nothing downstream
    reads ``info['icc_profile']``: the pixels are sRGB from here on."""
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except Exception as e:  # PyCMSError, OSError: a damaged or truncated profile
        notes.append(f"{name}: its colour profile cannot be read ({_first_line(e)}); taking the image as sRGB")
        return im
    what = describe(source)
    if "srgb" in what.lower().replace(" ", ""):  # already sRGB: nothing to convert (LittleCMS's, IEC61966-2.1, ...)
        return im
    base = _BASE.get(im.mode)
    if base is None:
        notes.append(f"{name}: its colour profile ({what}) cannot be applied to a {im.mode} image; "
                     "taking the image as sRGB")
        return im
    alpha = im.convert("RGBA").getchannel("A") if im.mode in _ALPHA or (im.mode == "P" and "transparency" in im.info) \
        else None
    colour = im if im.mode == base else im.convert(base)
    try:
        out = ImageCms.profileToProfile(colour, source, _srgb(), outputMode="RGB")
    except Exception as e:  # a profile of another colour space than the pixels (a CMYK profile on an RGB image)
        notes.append(f"{name}: its colour profile ({what}) does not fit its {im.mode} pixels ({_first_line(e)}); "
                     "taking the image as sRGB")
        return im
    assert out is not None
    if alpha is not None:
        out.putalpha(alpha)
    out.info = {k: v for k, v in im.info.items() if k != "icc_profile"}
    notes.append(f"{name}: converted from its colour profile ({what}) to sRGB")
    return out


