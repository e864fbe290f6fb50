"""ICC profiles built from their primaries, for tests (Pillow's ImageCms can only create sRGB, LAB and XYZ): an RGB
matrix/TRC display profile (ICC v2) from xy primaries, a white point and a tone curve, and the oracle that converts
its pixels to sRGB with numpy alone (XYZ through the same matrices, Bradford-adapted to the PCS's D50); and a CMYK
press profile in miniature (a lut16 A2B0, exact at the corners of the ink cube)."""

from __future__ import annotations

import struct

import numpy as np

D50 = np.array([0.9642, 1.0, 0.8249])
D65_XY = (0.3127, 0.3290)
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # ICC parametric type 3
ADOBE_GAMMA = 563 / 256  # 2.19921875, as Adobe RGB (1998) stores it


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz(primaries: tuple, white: tuple[float, float] = D65_XY) -> np.ndarray:
    """The 3×3 matrix from linear RGB to XYZ (white → Y = 1)."""
    cols = np.stack([_xyz(p) for p in primaries], axis=1)
    return cols * np.linalg.solve(cols, _xyz(white))


def to_d50(matrix: np.ndarray, white: tuple[float, float] = D65_XY) -> np.ndarray:
    """``matrix`` followed by the Bradford adaptation of ``white`` to D50 (what an ICC profile's colorants hold)."""
    lms_src, lms_dst = BRADFORD @ _xyz(white), BRADFORD @ D50
    return np.linalg.inv(BRADFORD) @ np.diag(lms_dst / lms_src) @ BRADFORD @ matrix


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _assemble(tags: list[tuple[bytes, bytes]], classes: bytes) -> bytes:
    """An ICC v2.1 profile: the 128-byte header (``classes``: device class, colour space, PCS), the tag table, the
    tags' data."""
    table_end = 128 + 4 + 12 * len(tags)
    body, entries = b"", b""
    for sig, data in tags:
        entries += sig + struct.pack(">II", table_end + len(body), len(data))
        body += _pad(data)
    size = table_end + len(body)
    header = (struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + classes
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)
              + b"".join(_s15(v) for v in D50) + b"\0" * 4 + b"\0" * 44)
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + body


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0\0\0" + b"\0" * 67


def _curve(curve: tuple[float, ...] | float) -> bytes:
    if isinstance(curve, tuple):
        return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in curve)
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(curve * 256)) + b"\0\0"


def rgb_profile(name: str, primaries: tuple, curve: tuple[float, ...] | float) -> bytes:
    """An ICC v2 display profile (RGB → XYZ PCS) from xy primaries (D65 white) and a tone curve."""
    m = to_d50(rgb_to_xyz(primaries))
    tags = [(b"desc", _desc(name)), (b"wtpt", b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in D50)),
            (b"cprt", b"text\0\0\0\0" + b"no copyright\0")]
    for i, sig in enumerate((b"rXYZ", b"gXYZ", b"bXYZ")):
        tags.append((sig, b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in m[:, i])))
    for sig in (b"rTRC", b"gTRC", b"bTRC"):
        tags.append((sig, _curve(curve)))
    return _assemble(tags, b"mntrRGB XYZ ")


def decode(v: np.ndarray, curve: tuple[float, ...] | float) -> np.ndarray:
    """Encoded [0, 1] → linear, by the profile's tone curve."""
    if not isinstance(curve, tuple):
        return v ** curve
    g, a, b, c, d = curve
    return np.where(v >= d, (a * v + b) ** g, c * v)


def encode_srgb(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def to_srgb(rgb8: np.ndarray, primaries: tuple, curve: tuple[float, ...] | float) -> np.ndarray:
    """The oracle: 8-bit pixels in the profile's space → sRGB floats in 0-255 (both through D50, as LittleCMS)."""
    lin = decode(np.asarray(rgb8, dtype=np.float64) / 255, curve)
    xyz = lin @ to_d50(rgb_to_xyz(primaries)).T
    srgb_lin = xyz @ np.linalg.inv(to_d50(rgb_to_xyz(SRGB_PRIMARIES))).T
    return encode_srgb(srgb_lin) * 255


def srgb_to_lab(rgb8: np.ndarray) -> np.ndarray:
    """sRGB 0-255 → CIELAB under D50 (the PCS), through the D50-adapted sRGB matrix, as LittleCMS."""
    lin = decode(np.asarray(rgb8, dtype=np.float64) / 255, SRGB_CURVE)
    xyz = lin @ to_d50(rgb_to_xyz(SRGB_PRIMARIES)).T / D50
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def cmyk_profile(name: str, corners: dict[tuple[int, int, int, int], tuple[int, int, int]]) -> bytes:
    """An ICC v2 CMYK output-class profile whose A2B0 (a lut16 with two grid points per ink) maps each corner of the
    CMYK cube (0 or 1 per ink) to the Lab of the sRGB colour given for it (corners not given: the naive
    conversion, (1 - C)(1 - K) and so on): a press profile in miniature, exact at the corners."""
    grid = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    naive = tuple(round(255 * (1 - v) * (1 - k)) for v in (c, m, y))
                    lab = srgb_to_lab(np.array(corners.get((c, m, y, k), naive)))
                    grid += [round(lab[0] / 100 * 0xFF00), round((lab[1] + 128) * 256), round((lab[2] + 128) * 256)]
    lut = (b"mft2\0\0\0\0" + bytes([4, 3, 2, 0]) + b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
           + struct.pack(">HH", 2, 2) + struct.pack(">8H", *[0, 65535] * 4)
           + struct.pack(f">{len(grid)}H", *np.clip(grid, 0, 65535)) + struct.pack(">6H", *[0, 65535] * 3))
    tags = [(b"desc", _desc(name)), (b"wtpt", b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in D50)),
            (b"cprt", b"text\0\0\0\0" + b"no copyright\0"), (b"A2B0", lut)]
    return _assemble(tags, b"prtrCMYKLab ")
