"""Procedural sample images for ``impasto demo`` and the tests: no files to ship, nothing to download.

``sample_content`` paints a simple landscape photo-like scene (sky, sun, hills, a house, a lake); ``sample_style``
paints a swirling, thick-stroked "night sky" in a Van Gogh-like palette from thousands of random brush strokes.
Both are deterministic for a seed.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def sample_content(width: int = 384, height: int = 288, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - y) * np.array([90, 150, 230]) + y * np.array([225, 235, 245])
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    sun = (int(width * 0.78), int(height * 0.22))
    r = int(min(width, height) * 0.09)
    d.ellipse([sun[0] - r, sun[1] - r, sun[0] + r, sun[1] + r], fill=(255, 220, 120))
    for k, colour in enumerate([(70, 120, 80), (50, 100, 60)]):
        base = height * (0.55 + 0.1 * k)
        pts = [(x, base - height * 0.12 * math.sin(x / width * math.pi * (1.5 + k) + k)) for x in range(0, width + 8, 8)]
        d.polygon([(0, height), *pts, (width, height)], fill=colour)
    d.rectangle([0, int(height * 0.8), width, height], fill=(60, 110, 170))  # lake
    hx, hy, hw = int(width * 0.25), int(height * 0.5), int(width * 0.16)
    d.rectangle([hx, hy, hx + hw, hy + int(hw * 0.8)], fill=(200, 80, 60))
    d.polygon([(hx - 8, hy), (hx + hw // 2, hy - int(hw * 0.6)), (hx + hw + 8, hy)], fill=(110, 50, 40))
    d.rectangle([hx + hw // 3, hy + hw // 3, hx + 2 * hw // 3, hy + int(hw * 0.8)], fill=(60, 40, 30))
    for _ in range(12):  # trees
        tx = int(rng.uniform(0.45, 0.95) * width)
        ty = int(rng.uniform(0.6, 0.75) * height)
        s = int(rng.uniform(0.03, 0.06) * width)
        d.rectangle([tx - 2, ty, tx + 2, ty + s], fill=(80, 55, 35))
        d.ellipse([tx - s // 2, ty - s, tx + s // 2, ty + s // 4], fill=(35, int(rng.uniform(90, 130)), 45))
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32)
    arr += rng.normal(0, 3, arr.shape)  # a little sensor noise, like a photo
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def sample_style(width: int = 384, height: int = 384, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), (20, 35, 90))
    d = ImageDraw.Draw(img)
    palette = np.array([(25, 50, 130), (40, 80, 170), (70, 120, 200), (240, 210, 80), (250, 240, 160),
                        (30, 60, 60), (120, 170, 210), (15, 25, 60)])
    centres = rng.uniform(0, 1, (5, 2)) * (width, height)
    n = int(width * height / 60)
    for _ in range(n):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        # Strokes follow swirls around a few centres: the flow field gives the painting its movement.
        cx, cy = centres[np.argmin(((centres - (x, y)) ** 2).sum(1))]
        angle = math.atan2(y - cy, x - cx) + math.pi / 2 + rng.normal(0, 0.2)
        length = rng.uniform(6, 16) * width / 384
        dist = math.hypot(x - cx, y - cy) / max(width, height)
        weights = np.array([3, 3, 2, 1.5 * (dist < 0.12) + 0.2, 1.0 * (dist < 0.08) + 0.1, 0.5 + 2 * (y > 0.75 * height),
                            1, 1], dtype=float)
        colour = palette[rng.choice(len(palette), p=weights / weights.sum())] + rng.normal(0, 12, 3)
        colour = tuple(int(v) for v in np.clip(colour, 0, 255))
        x2, y2 = x + length * math.cos(angle), y + length * math.sin(angle)
        d.line([(x, y), (x2, y2)], fill=colour, width=max(2, int(rng.uniform(2, 5) * width / 384)))
    return img
