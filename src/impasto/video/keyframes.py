"""Styles over time: ``"0:a.jpg,120:b.jpg"`` → the style images of the clip and each frame's ``style_blend``.

Every keyframe's image is one style image of the clip (the same image named twice is loaded once), and frame t
between keyframes (f₀, A) and (f₁, B) takes the blend (1 − s)·A + s·B, s = (t − f₀)/(f₁ − f₀): the style targets
are blended in target space, exactly as ``style_blend`` blends several style images (core/terms.StyleTerm), so the
targets themselves are built once per image for the whole clip and only the weights change from frame to frame.
Before the first keyframe the first style holds, after the last the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError

Keyframes = tuple[tuple[int, str], ...]


def _bad(value: Any, why: str) -> ConfigError:
    return ConfigError(f"style_keyframes = {value!r} is invalid: {why}", key="style_keyframes")


def parse_keyframes(value: Any) -> Keyframes:
    """``"0:a.jpg,120:b.jpg"``, a {frame: image} dict or (frame, image) pairs → ((0, "a.jpg"), (120, "b.jpg")),
    checked: at least two keyframes, frames from 0 in strictly increasing order."""
    if isinstance(value, str):
        pairs: list[tuple[Any, Any]] = []
        for item in (v.strip() for v in value.split(",") if v.strip()):
            frame, sep, image = item.partition(":")
            if not sep or not image:
                raise _bad(value, f"{item!r} is not FRAME:IMAGE; give e.g. 0:a.jpg,120:b.jpg")
            pairs.append((frame, image))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = [tuple(p) for p in value]  # type: ignore[misc]
    try:
        out = tuple((int(f), str(img)) for f, img in pairs)
    except (TypeError, ValueError):
        raise _bad(value, "each keyframe is FRAME:IMAGE with a whole frame number, e.g. 0:a.jpg,120:b.jpg") from None
    if len(out) < 2:
        raise _bad(value, "give at least two keyframes (one style for the whole clip is a STYLE argument)")
    frames = [f for f, _ in out]
    if min(frames) < 0:
        raise _bad(value, "frames are counted from 0")
    if any(b <= a for a, b in zip(frames, frames[1:])):
        raise _bad(value, f"frames {','.join(map(str, frames))} are not in increasing order; list the keyframes "
                          "by frame, each frame once")
    return out


def check_range(keyframes: Keyframes, n: int) -> None:
    """Every keyframe within a clip of ``n`` frames (counted in the frames taken)."""
    last = keyframes[-1][0]
    if last >= n:
        raise ConfigError(f"style_keyframes: frame {last} is past the end (the clip has {n} frames, 0-{n - 1}); "
                          "give keyframes within it", key="style_keyframes")


def style_images(keyframes: Keyframes) -> list[str]:
    """The clip's style images, each once, in the order they first appear."""
    return list(dict.fromkeys(img for _, img in keyframes))


def blend_at(keyframes: Keyframes, t: int) -> tuple[float, ...]:
    """Frame t's weights over ``style_images(keyframes)`` (they sum to 1)."""
    images = style_images(keyframes)
    weights = [0.0] * len(images)
    frames = [f for f, _ in keyframes]
    if t <= frames[0]:
        weights[images.index(keyframes[0][1])] = 1.0
    elif t >= frames[-1]:
        weights[images.index(keyframes[-1][1])] = 1.0
    else:
        k = max(i for i, f in enumerate(frames) if f <= t)
        (f0, a), (f1, b) = keyframes[k], keyframes[k + 1]
        s = (t - f0) / (f1 - f0)
        weights[images.index(a)] += 1 - s
        weights[images.index(b)] += s
    return tuple(weights)


def check_styles(keyframes: Keyframes | None, styles: Sequence[Any], style_blend: Any) -> None:
    """Keyframes name the clip's styles themselves: refuse STYLE arguments or a ``style_blend`` beside them."""
    if keyframes is None:
        return
    if styles:
        raise ConfigError("style images are given twice: as STYLE arguments and in style_keyframes; give them in "
                          "style_keyframes only", key="style_keyframes")
    if style_blend is not None:
        raise ConfigError("style_blend and style_keyframes are both given: the keyframes set each frame's blend; "
                          "leave style_blend out", key="style_keyframes")
