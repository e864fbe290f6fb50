"""Loss terms as small modules that hold their targets as buffers and return one value per batch item.

Three normalisation conventions (``norm``), written into every recipe because loss weights are not portable:

- ``relative`` (impasto): G = F Fᵀ / (H·W);  style_l = ‖G − Ĝ‖² / ‖Ĝ‖²;  content_l = ‖F − F̂‖² / ‖F̂‖².
  Both are ratios, so a weight means the same at any image size and for either weight source.
- ``classic`` (the PyTorch exercise): G = F Fᵀ;  style_l = mean((G − Ĝ)²) / (C·H·W);  content = mean((F − F̂)²).
- ``jcjohnson`` (neural-style): G = F Fᵀ / (C·H·W);  style_l = mean((G − Ĝ)²);  content = mean((F − F̂)²).

Every module takes an optional spatial ``guide`` (B|1, 1, H, W) in [0, 1] that weights positions (for masks later).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-8


def _f32(t: torch.Tensor) -> torch.Tensor:
    """Half precision → fp32 for Grams and losses (fp16 Grams overflow); fp32/fp64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _guided(feat: torch.Tensor, guide: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features weighted by a guide resized to them, and the number of (weighted) positions per item."""
    b, _, h, w = feat.shape
    if guide is None:
        return feat, torch.full((b,), float(h * w), device=feat.device, dtype=feat.dtype)
    g = F.interpolate(guide.to(feat.dtype), size=(h, w), mode="area")  # (B|1, 1, h, w)
    return feat * g.sqrt(), g.flatten(1).sum(1).expand(b).clamp_min(1.0)


def moments(feat: torch.Tensor, guide: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums over positions that every style statistic is made from, and that add up over tiles.

    (B, C, H, W) → (Σ f fᵀ (B, C, C), Σ f (B, C), positions (B,)), in fp32 at least (half-precision Grams overflow).
    """
    feat = _f32(feat)
    b, c, _, _ = feat.shape
    feat, positions = _guided(feat, guide)
    if c > 1 and not feat.is_contiguous() and feat.is_contiguous(memory_format=torch.channels_last):
        # VGG's activations are channels-last (core/vgg.py): read them as (B, positions, C) without a copy
        rows = feat.permute(0, 2, 3, 1).reshape(b, -1, c)
        return rows.transpose(1, 2) @ rows, rows.sum(1), positions
    flat = feat.reshape(b, c, -1)
    return flat @ flat.transpose(1, 2), flat.sum(-1), positions


def _gram(second: torch.Tensor, positions: torch.Tensor, norm: str) -> torch.Tensor:
    b, c, _ = second.shape
    positions = positions.clamp_min(EPS)  # a guide with no mass (an empty region): a zero Gram, not NaN
    if norm == "relative":
        return second / positions.view(b, 1, 1)
    if norm == "jcjohnson":
        return second / (positions.view(b, 1, 1) * c)
    return second  # classic: unnormalised


def gram_matrix(feat: torch.Tensor, norm: str = "relative", guide: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, H, W) → (B, C, C)."""
    second, _, positions = moments(feat, guide)
    return _gram(second, positions, norm)


class ContentLoss(nn.Module):
    def __init__(self, target: torch.Tensor, norm: str = "relative") -> None:
        super().__init__()
        self.norm = norm
        self.register_buffer("target", _f32(target.detach()))  # (B|1, C, H, W)
        self.register_buffer("scale", self.target.pow(2).flatten(1).sum(1).add(EPS))  # (B|1,)

    def normalizer(self) -> torch.Tensor:
        """What the sum of squared differences is divided by: ‖F̂‖² (relative) or the element count (mean)."""
        return self.scale if self.norm == "relative" else torch.full_like(self.scale, self.target[0].numel())

    def sum_sq(self, feat: torch.Tensor, target: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        diff = (_f32(feat) - target).pow(2)
        if guide is not None:
            diff = diff * F.interpolate(guide.to(diff.dtype), size=diff.shape[-2:], mode="area")
        return diff.flatten(1).sum(1)

    def forward(self, feat: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:  # → (B,)
        return self.sum_sq(feat, self.target, guide) / self.normalizer()


class GramLoss(nn.Module):
    """Gatys et al.'s style loss at one layer, against a (blended) target Gram matrix."""

    def __init__(self, target_gram: torch.Tensor, norm: str = "relative") -> None:
        super().__init__()
        self.norm = norm
        self.register_buffer("target", _f32(target_gram.detach()))  # (B|1, C, C)
        self.register_buffer("scale", self.target.pow(2).flatten(1).sum(1).add(EPS))

    @staticmethod
    def stats_from_moments(second: torch.Tensor, first: torch.Tensor, positions: torch.Tensor,
                           norm: str = "relative") -> torch.Tensor:
        return _gram(second, positions, norm)

    @classmethod
    def stats(cls, feat: torch.Tensor, norm: str = "relative", guide: torch.Tensor | None = None) -> torch.Tensor:
        return cls.stats_from_moments(*moments(feat, guide), norm)

    def from_moments(self, second: torch.Tensor, first: torch.Tensor, positions: torch.Tensor,
                     shape: tuple[int, int, int]) -> torch.Tensor:
        """The loss from accumulated moments; ``shape`` is the whole feature map's (C, H, W)."""
        gram = _gram(second, positions, self.norm)
        diff = (gram - self.target).pow(2).flatten(1)
        if self.norm == "relative":
            return diff.sum(1) / self.scale
        c, h, w = shape
        loss = diff.mean(1)
        return loss / (c * h * w) if self.norm == "classic" else loss

    def forward(self, feat: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_moments(*moments(feat, guide), tuple(feat.shape[1:]))  # type: ignore[arg-type]


class WassersteinLoss(nn.Module):
    """Squared 2-Wasserstein distance between Gaussians fitted to the features (means and covariances).

    W² = ‖μ − μ̂‖² + tr(Σ) + tr(Σ̂) − 2 tr((Σ̂^½ Σ Σ̂^½)^½). The target's square root is computed once; each step
    needs only the eigenvalues of a symmetric matrix, whose gradient is stable (eigenvectors' is not).
    Normalised by ‖μ̂‖² + tr(Σ̂) so that it is a ratio like the relative Gram loss.
    """

    def __init__(self, target_stats: torch.Tensor, norm: str = "relative") -> None:
        super().__init__()
        # target_stats: (B|1, C, C+1): covariance then mean as the last column (so blends are one tensor).
        cov, mean = target_stats[..., :-1].double(), target_stats[..., -1].double()
        vals, vecs = torch.linalg.eigh(cov)
        sqrt = vecs @ torch.diag_embed(vals.clamp_min(0).sqrt()) @ vecs.transpose(-1, -2)
        dtype = _f32(target_stats).dtype
        self.register_buffer("mean", mean.to(dtype))
        self.register_buffer("cov_sqrt", sqrt.to(dtype))
        self.register_buffer("trace", torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1).to(dtype))
        self.register_buffer("scale", (mean.pow(2).sum(-1) + self.trace.double()).to(dtype).add(EPS))

    @staticmethod
    def stats_from_moments(second: torch.Tensor, first: torch.Tensor, positions: torch.Tensor,
                           norm: str = "relative") -> torch.Tensor:
        """→ (B, C, C+1): covariance (second moment minus mean outer product), and the mean as the last column."""
        b = second.shape[0]
        positions = positions.clamp_min(EPS)  # a guide with no mass: zero statistics, not NaN
        mean = first / positions.view(b, 1)
        cov = second / positions.view(b, 1, 1) - mean.unsqueeze(2) * mean.unsqueeze(1)
        return torch.cat([cov, mean.unsqueeze(-1)], dim=-1)

    @classmethod
    def stats(cls, feat: torch.Tensor, norm: str = "relative", guide: torch.Tensor | None = None) -> torch.Tensor:
        return cls.stats_from_moments(*moments(feat, guide))

    def from_moments(self, second: torch.Tensor, first: torch.Tensor, positions: torch.Tensor,
                     shape: tuple[int, int, int] | None = None) -> torch.Tensor:
        s = self.stats_from_moments(second, first, positions)
        cov, mean = s[..., :-1], s[..., -1]
        m = self.cov_sqrt @ cov @ self.cov_sqrt
        m = (m + m.transpose(-1, -2)) / 2
        cross = torch.linalg.eigvalsh(m).clamp_min(1e-8).sqrt().sum(-1)
        trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
        w2 = (mean - self.mean).pow(2).sum(-1) + trace + self.trace - 2 * cross
        return w2.clamp_min(0) / self.scale

    def forward(self, feat: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        return self.from_moments(*moments(feat, guide))


STYLE_LOSSES: dict[str, type[nn.Module]] = {"gram": GramLoss, "wasserstein": WassersteinLoss}


def tv_loss(img: torch.Tensor, norm: str = "relative") -> torch.Tensor:
    """Total variation of (B, 3, H, W) images in [0, 1] → (B,).

    ``relative`` and ``classic``: the mean squared difference of horizontal plus vertical neighbours.
    ``jcjohnson``: what neural-style's TVLoss optimises. Its updateGradInput adds ``strength·(x_diff + y_diff)``
    with both differences taken over the (H−1)×(W−1) top-left crop of the 0-255 image, which is the gradient of
    ½·Σ(x_diff² + y_diff²) — half the plain sum (neural_style.lua, ``TVLoss``).
    """
    if norm == "jcjohnson":
        corner = img[..., :-1, :-1]
        dx = (corner - img[..., :-1, 1:]).pow(2)
        dy = (corner - img[..., 1:, :-1]).pow(2)
        return 0.5 * 255.0**2 * (dx.flatten(1).sum(1) + dy.flatten(1).sum(1))
    dx = (img[..., :, 1:] - img[..., :, :-1]).pow(2)
    dy = (img[..., 1:, :] - img[..., :-1, :]).pow(2)
    return dx.flatten(1).mean(1) + dy.flatten(1).mean(1)
