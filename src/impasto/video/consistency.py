"""Warping by optical flow, Ruder et al.'s certainty masks, and Lai et al.'s warping error.

Flows are (H, W, 2) arrays or tensors of (dx, dy) pixels from frame A to frame B (see flow.py). ``warp(img_b,
flow_ab)`` brings B's pixels onto A's grid: out(x) = img_b(x + flow_ab(x)), bilinear. So the previous stylised frame
t − 1 is carried onto frame t with the flow t → t − 1 (Ruder et al.'s ω).

Certainty (Ruder, Dosovitskiy & Brox 2016, section 3.2), per pixel x of frame A, with ŵ = flow A → B and
w̃(x) = (flow B → A)(x + ŵ(x)), the reverse flow read where x lands:
- disoccluded (x was hidden in B, or lands outside it): |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5, or x + ŵ(x) is
  off B's frame (a pixel that entered the picture, at the edge of a pan);
- on a motion boundary: |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002;
and c(x) = 0 there, 1 elsewhere. Long-term (section 3.3): the mask for frame t − j keeps only the pixels that no
closer frame of the set covers, c_long_j = max(c_j − Σ_{k<j} c_k, 0) ("closest first").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

Flow = np.ndarray | torch.Tensor


def as_flow(flow: Flow, device: torch.device | None = None) -> torch.Tensor:
    """(H, W, 2) array or tensor → (1, 2, H, W) float32 tensor."""
    t = torch.as_tensor(np.asarray(flow) if not isinstance(flow, torch.Tensor) else flow, dtype=torch.float32)
    return t.permute(2, 0, 1).unsqueeze(0).to(device) if device is not None else t.permute(2, 0, 1).unsqueeze(0)


def _grid(flow: torch.Tensor) -> torch.Tensor:
    """(1, 2, H, W) pixel flow → grid_sample's (1, H, W, 2) grid in [-1, 1] (pixel centres at ±1: align_corners)."""
    _, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = (xs + flow[0, 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + flow[0, 1]) * (2 / max(h - 1, 1)) - 1
    return torch.stack([x, y], dim=-1).unsqueeze(0)


def warp(img: torch.Tensor, flow: Flow) -> torch.Tensor:
    """(n, C, H, W) image of frame B and the flow A → B → the image on A's grid (bilinear; border values outside,
    which the mask marks uncertain)."""
    f = as_flow(flow, img.device) if not (isinstance(flow, torch.Tensor) and flow.dim() == 4) else flow
    grid = _grid(f.to(img.device)).expand(img.shape[0], -1, -1, -1)
    return F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=True).to(img.dtype)


def inside(flow: Flow) -> torch.Tensor:
    """(1, 1, H, W): 1 where x + flow(x) lies within the frame (half a pixel of slack), else 0."""
    f = as_flow(flow) if not (isinstance(flow, torch.Tensor) and flow.dim() == 4) else flow
    _, _, h, w = f.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=f.dtype), torch.arange(w, dtype=f.dtype), indexing="ij")
    x, y = xs + f[0, 0], ys + f[0, 1]
    return ((x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5)).to(f.dtype)[None, None]


def certainty(flow_ab: Flow, flow_ba: Flow) -> torch.Tensor:
    """Ruder et al.'s mask on A's grid, (1, 1, H, W) in {0, 1}: 0 where A's pixel is disoccluded in B (the two
    flows disagree, or it lands outside B) or lies on a motion boundary of ``flow_ab``."""
    fab, fba = as_flow(flow_ab), as_flow(flow_ba)
    back = warp(fba, fab)  # w̃: the reverse flow, read where each pixel of A lands in B
    sq = lambda v: v.pow(2).sum(1, keepdim=True)
    occluded = sq(back + fab) > 0.01 * (sq(back) + sq(fab)) + 0.5
    du_y, du_x = torch.gradient(fab[0, 0])
    dv_y, dv_x = torch.gradient(fab[0, 1])
    grad = (du_x.pow(2) + du_y.pow(2) + dv_x.pow(2) + dv_y.pow(2))[None, None]
    boundary = grad > 0.01 * sq(fab) + 0.002
    return (~occluded & ~boundary).float() * inside(fab)


def closest_first(masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Long-term masks, closest earlier frame first: each keeps what no closer frame's mask covers."""
    out, covered = [], None
    for m in masks:
        out.append(m.clone() if covered is None else (m - covered).clamp_min(0))
        covered = m.clone() if covered is None else (covered + m).clamp(max=1)
    return out


def warping_error(frames: Sequence[torch.Tensor], flows_back: Sequence[Flow], masks: Sequence[torch.Tensor]) -> float:
    """Lai et al. 2018's warping error of a clip: the mean over consecutive pairs (t − 1, t) of
    Σ M ‖O_t − warp(O_{t−1})‖² / Σ M, with the flow t → t − 1 and its certainty mask M (on frame t's grid);
    frames (1, 3, H, W) in [0, 1]. ``flows_back[i]`` and ``masks[i]`` belong to the pair (i, i + 1)."""
    errors = []
    for t in range(1, len(frames)):
        m = masks[t - 1].to(frames[t].device)
        diff = (frames[t].float() - warp(frames[t - 1].float(), flows_back[t - 1])).pow(2).sum(1, keepdim=True)
        errors.append(float((m * diff).sum() / m.sum().clamp_min(1)))
    return float(np.mean(errors)) if errors else 0.0
