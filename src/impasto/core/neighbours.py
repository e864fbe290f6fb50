"""Style by neighbours: each location of the result takes the style feature nearest to it (after Kolkin, Kucera,
Paris, Sykora, Shechtman & Shakhnarovich 2022, *Neural Neighbor Style Transfer*, NNST).

Every global statistic (a Gram matrix, a Gaussian's W2) asks the whole result to show every feature the painting
has, so a portrait's eyes must land somewhere in a photo. Matching per location asks only that each location look
like *some* location of the painting, the one nearest to it: a window takes window-like paint, and nothing obliges
an eye to appear.

- **Hypercolumns** (``hypercolumns``): the style layers' activations brought to one grid (stride ``GRID``: relu1_x
  averaged over 4×4 pixels, relu2_x over 2×2, relu3_x as is, relu4_x and relu5_x upsampled bilinearly by 2 and 4)
  and stacked. Each layer is divided by the photo's mean centred feature norm at that layer (``layer_scales``; the
  photo's, not the styles', so that one region's loss does not depend on another region's style) and multiplied
  by √(its weight's share), so a layer's share of the squared norm is its weight (departure: NNST divides each layer
  by its channel count, which leaves relu4's 512 channels of larger activations dominant on VGG19).
- **Search** (``nearest``): under *centred* cosine, each set centred on its own mean (as NNST), so a photo's overall
  colour cast does not pick the painting's regions; exact, as chunked matrix products, over at most ``max_style``
  style locations (a strided subsample beyond that), optionally projected onto the style's principal directions.
- **Rarity** (``rarity``): a painting's style is what recurs in it (strokes, hatching, palette); its objects (an eye,
  a mouth) occur once or twice. Each style location's rarity is how much less it resembles its ``RARE_SHARE``
  most similar style locations than the median location does; the search maximises cos − λ·rarity
  (``neighbour_rarity``, off by default: at the search it moves matches off a portrait's face, but it did not
  remove the one copy the gallery showed, an astronaut's badge drawn as an eye; bench/README.md). Departure: NNST
  has no such term.
- **Loss** (``NeighbourLoss``): 1 − cos(result's hypercolumn, its neighbour) averaged over locations, the
  neighbours fixed between searches (NNST's "hypercolumn matching" regime). The neighbours are searched for with a
  query mixing the photo and the current result (``query``), at the start of each scale and every ``refresh`` steps.

Tensors in, tensors out; no config, no printing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from . import tiling

GRID = 4  # the hypercolumns' stride in pixels (relu3_x's)
GRID_LAYER = "relu3_1"  # a layer of that stride, for the tiling helpers (crops, guides)
CHUNK = 4096  # query locations per distance block: a (CHUNK, M) block of fp32 is 256 MB at M = 16k
EPS = 1e-8
RARE_SHARE = 1 / 30  # a location's rarity compares it with its most similar ~3% of the painting's locations


def grid_shape(h: int, w: int) -> tuple[int, int]:
    return h // GRID, w // GRID


def _to_grid(feat: torch.Tensor, layer: str, shape: tuple[int, int]) -> torch.Tensor:
    """(B, C, h_l, w_l) at the layer's stride → (B, C, *shape) at stride GRID. Pooling and scale-2ᵏ upsampling only,
    so that a tile aligned on the 16-pixel grid gets exactly the whole image's values in its interior."""
    s = tiling.stride(layer)
    if s < GRID:
        k = GRID // s
        out = F.avg_pool2d(feat, k)
    elif s == GRID:
        out = feat
    else:
        out = F.interpolate(feat, scale_factor=s // GRID, mode="bilinear", align_corners=False)
    h, w = shape
    dh, dw = h - out.shape[-2], w - out.shape[-1]
    if dh > 0 or dw > 0:  # an odd grid past the deeper layer's last row or column: repeat the edge
        out = F.pad(out, (0, max(dw, 0), 0, max(dh, 0)), mode="replicate")
    return out[..., :h, :w]


def layer_scales(images_feats: Sequence[Mapping[str, torch.Tensor]], layers: Sequence[str]) -> dict[str, float]:
    """Per layer: 1 / the mean norm of the images' centred feature vectors (over all their locations)."""
    out = {}
    for k in layers:
        total, count = 0.0, 0
        for feats in images_feats:
            f = feats[k].double().flatten(2)[0]  # (C, N)
            norms = (f - f.mean(1, keepdim=True)).norm(dim=0)
            total, count = total + float(norms.sum()), count + norms.numel()
        out[k] = count / max(total, EPS)
    return out


def hypercolumns(feats: Mapping[str, torch.Tensor], layers: Sequence[str], factors: torch.Tensor,
                 shape: tuple[int, int]) -> torch.Tensor:
    """Features of ``layers`` → (B, D, *shape) hypercolumns; ``factors`` (B|1, L): each layer's multiplier per
    item (its normalisation times √ its weight share)."""
    cols = []
    for j, k in enumerate(layers):
        f = feats[k]
        f = f if f.dtype in (torch.float32, torch.float64) else f.float()
        cols.append(_to_grid(f, k, shape) * factors[:, j].view(-1, 1, 1, 1).to(f.dtype))
    return torch.cat(cols, dim=1)


def _unit_centred(x: torch.Tensor) -> torch.Tensor:
    """(N, D) rows → centred on their mean row, then of unit length."""
    x = x - x.mean(0, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(EPS)


def principal(style: torch.Tensor, dims: int) -> torch.Tensor | None:
    """(M, D) style rows → a (D, dims) orthonormal basis of their centred principal directions, or None when
    ``dims`` is 0 or not below D (nothing to gain)."""
    if dims <= 0 or dims >= style.shape[1] or dims >= style.shape[0]:
        return None
    x = style.float() - style.float().mean(0, keepdim=True)
    _, _, v = torch.pca_lowrank(x, q=dims, center=False, niter=2)
    return v  # (D, dims)


def rarity(style: torch.Tensor, basis: torch.Tensor | None = None, chunk: int = CHUNK) -> torch.Tensor:
    """(M, D) style rows → (M,) ≥ 0: how much less each row's centred cosine to its ``RARE_SHARE`` × M most similar
    other rows is than the median row's (0 for the common half; an eye of a portrait scores high)."""
    s = style.float() if basis is None else style.float() @ basis
    s = _unit_centred(s)
    k = max(1, min(s.shape[0] - 1, round(s.shape[0] * RARE_SHARE)))
    if s.shape[0] < 2:
        return s.new_zeros(s.shape[0])
    st = s.t().contiguous()
    kin = torch.empty(s.shape[0], device=s.device)
    for a in range(0, s.shape[0], chunk):
        kin[a:a + chunk] = (s[a:a + chunk] @ st).topk(k + 1, dim=1).values[:, 1:].mean(1)  # without itself
    r = kin.median() - kin
    return r.clamp_min(0)


def nearest(query: torch.Tensor, style: torch.Tensor, basis: torch.Tensor | None = None,
            chunk: int = CHUNK, penalty: torch.Tensor | None = None) -> torch.Tensor:
    """Index of each query row's nearest style row under centred cosine. ``query`` (N, D), ``style`` (M, D) → (N,)
    indices into ``style``. With ``basis`` (D, d), both are compared after projection onto it (cheaper by D/d).
    ``penalty`` (M,): subtracted from every query's cosine to that row (``rarity`` × λ)."""
    q, s = query.float(), style.float()
    if basis is not None:
        q, s = q @ basis, s @ basis
    q, s = _unit_centred(q), _unit_centred(s)
    st = s.t().contiguous()  # (d, M)
    out = torch.empty(q.shape[0], dtype=torch.long, device=q.device)
    for a in range(0, q.shape[0], chunk):
        sim = q[a:a + chunk] @ st
        out[a:a + chunk] = (sim if penalty is None else sim - penalty.to(sim.dtype)).argmax(1)
    return out


def subsample(n: int, limit: int, generator: torch.Generator | None = None) -> torch.Tensor | None:
    """Indices of at most ``limit`` of ``n`` locations (evenly spread, a random phase), or None for all."""
    if limit <= 0 or n <= limit:
        return None
    step = n / limit
    phase = float(torch.rand((), generator=generator)) * step if generator is not None else 0.0
    return (torch.arange(limit, dtype=torch.float64) * step + phase).long().clamp_max(n - 1)


def cosine_distance(out: torch.Tensor, target_unit: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) hypercolumns and (B|1, D, h, w) unit-length targets → (B, h, w): 1 − cos."""
    norm = out.pow(2).sum(1).clamp_min(EPS).sqrt()
    return 1.0 - (out * target_unit).sum(1) / norm
