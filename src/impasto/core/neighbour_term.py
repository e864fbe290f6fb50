"""The style term by neighbours (``style_loss = "neighbour"``; the method is core/neighbours.py).

It is the objective's ``style`` term (same name, weight ``style_weight``, same columns in histories and plots) but
per location, so it adds up over tiles like the content term (kind ``sum``): a tile needs only its halo.

- Targets: at the start of each scale (and every ``neighbour_refresh`` steps at the last scale) ``prepare`` looks at
  a query image, ``neighbour_mix`` × the photo + (1 − ``neighbour_mix``) × the current result, and gives each of its
  grid locations the nearest hypercolumn of each style image (only from the part a style mask marks).
- Several styles (``style_blend``): each location has a neighbour in every style image, and the loss is the
  blend-weighted sum of its distances to them (departure: NNST has one style image; taking one nearest neighbour from
  the union would let one style win everywhere it is nearer and ignore the blend).
- Masks: a region's loss counts its own locations (its guide at the grid), against its own blend of the styles,
  weighted by its share of the image like the Gram path (objective.Region). Where no region reaches, no style.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from . import tiling
from .neighbours import (
    GRID_LAYER,
    cosine_distance,
    grid_shape,
    hypercolumns,
    layer_scales,
    nearest,
    principal,
    rarity,
    subsample,
)
from .terms import Box, Features, Term, TermContext

MAX_STYLE = 16384  # style locations searched at most (a strided subsample beyond): bounds the search's cost
# A search dearer than this many multiply-adds (N × M × D; ~2 s on a 2-core CPU) runs in the style's first PROJECT_DIMS
# principal directions: from 1024 px up with the default layers (D = 960), ~4× cheaper.
PROJECT_WORK = 2e11
PROJECT_DIMS = 256


class NeighbourTerm(Term):
    name = "style"
    description = "style loss by neighbours: mean 1 − cos to each location's nearest style feature (before style_weight)"
    kind = "sum"

    @staticmethod
    def weight(cfg) -> float:  # type: ignore[no-untyped-def]
        return cfg.style_weight

    @classmethod
    def build(cls, ctx: TermContext, device: torch.device) -> Term:
        assert ctx.style_features is not None and ctx.query_features is not None and ctx.content is not None
        names = sorted({n for c in ctx.cfgs for n, _ in c.style_layers})
        sets = ctx.style_features(names)  # per style image: [(features, its guide at the grid or None)], rotations after
        # Each layer's normalisation from the photo at this scale (not the styles: a region's loss must not change
        # with another region's style image; and the photo is the same for every run of a batch and every step).
        scales = layer_scales([ctx.content_features(names)], names)
        factors = []
        for c in ctx.cfgs:  # per run: each layer's normalisation × √(its share of the weights)
            w = dict(c.style_layers)
            total = sum(w.values())
            factors.append([scales[k] * (w.get(k, 0.0) / total) ** 0.5 for k in names])
        guides = [g(GRID_LAYER) for g in ctx.region_guides]
        return cls(names, torch.tensor(factors, device=device), sets, ctx.regions, guides,
                   ctx.region_weights or None, ctx.content, ctx.query_features, ctx.cfgs)

    def __init__(self, layers: Sequence[str], factors: torch.Tensor,
                 sets: Sequence[Sequence[tuple[Features, torch.Tensor | None]]],
                 regions: Sequence[tuple[torch.Tensor, ...]], guides: Sequence[torch.Tensor | None],
                 region_weights: Sequence[torch.Tensor] | None, content: torch.Tensor,
                 query_features: Callable[[torch.Tensor, Sequence[str]], Features], cfgs: Sequence) -> None:
        super().__init__()
        self.layers = tuple(layers)
        self.factors = factors  # (n, L)
        self.n = factors.shape[0]
        self.content, self.query_features = content, query_features
        self.mix = [c.neighbour_mix for c in cfgs]
        self.rare = [float(c.neighbour_rarity) for c in cfgs]  # λ per run
        self.refresh = int(cfgs[0].neighbour_refresh)
        self.blends = [r[0] for r in regions]  # per region: (n, S)
        self.guides = list(guides)  # per region: (1|n, 1, h, w) at the grid, or None
        self.region_weights = list(region_weights) if region_weights is not None else [None] * len(self.blends)
        self.shape = grid_shape(*content.shape[-2:])
        self.masses = [torch.tensor(float(self.shape[0] * self.shape[1]), device=content.device) if g is None
                       else g.flatten(1).sum(1).clamp_min(1e-8) for g in self.guides]
        self.used = sorted({s for b in self.blends for s in (b > 0).any(0).nonzero().flatten().tolist()})
        self._style = self._style_rows(sets)
        self.index: torch.Tensor | None = None  # (n, S, h, w): each location's neighbour (S indexes self.used)
        self.units: list[list[torch.Tensor]] = []  # per run, per used style: (M, D) unit-length rows
        self.searches = 0
        self._rare_cache: dict[tuple[int, int], torch.Tensor] = {}

    def _style_rows(self, sets: Sequence[Sequence[tuple[Features, torch.Tensor | None]]]) -> list[torch.Tensor]:
        """Per used style image: its hypercolumns (and its rotations', if asked) as (M, D) rows with unit factors
        (each run's factors apply at the search), only where its style guide marks, subsampled to MAX_STYLE."""
        ones = torch.ones(1, len(self.layers), device=self.factors.device)
        rows = []
        for s in self.used:
            parts = []
            for feats, guide in sets[s]:
                k0 = self.layers[0]
                size = [n * tiling.stride(k0) for n in feats[k0].shape[-2:]]
                hc = hypercolumns(feats, self.layers, ones, grid_shape(*size))[0].flatten(1).t()  # (M, D)
                if guide is not None:
                    g = guide.flatten()
                    hc = hc[g >= 0.5] if bool((g >= 0.5).any()) else hc[g >= g.max()]
                parts.append(hc)
            hc = torch.cat(parts)
            pick = subsample(hc.shape[0], MAX_STYLE)
            rows.append(hc if pick is None else hc[pick.to(hc.device)])
        return rows

    @torch.no_grad()
    def prepare(self, images: torch.Tensor) -> None:
        """Search each run's neighbours, with ``images`` (n, 3, H, W), the current results at this scale. Kept: per
        run and style image, the unit-length style rows (M, D) and each grid location's index into them (h, w); the
        targets are gathered from them where they are needed (a tile gathers its own: memory follows the tile)."""
        if not self.used:
            return
        mix = torch.tensor(self.mix, device=images.device, dtype=images.dtype).view(-1, 1, 1, 1)
        query = mix * self.content + (1 - mix) * images  # (n, 3, H, W)
        feats = self.query_features(query, self.layers)
        hc = hypercolumns(feats, self.layers, self.factors, self.shape)  # (n, D, h, w)
        n, d, h, w = hc.shape
        widths = [feats[k].shape[1] for k in self.layers]
        self.units, index = [], []
        for i in range(n):
            q = hc[i].flatten(1).t()  # (N, D)
            scale = torch.cat([self.factors[i, j].expand(wd) for j, wd in enumerate(widths)]).to(q.dtype)
            units, found = [], []
            for rows in self._style:  # the style rows carry unit factors: run i's apply here
                s = rows.to(q.dtype) * scale
                big = q.shape[0] * s.shape[0] * d > PROJECT_WORK
                penalty = self._rarity(i, len(units), s) if self.rare[i] > 0 else None
                found.append(nearest(q, s, principal(s, PROJECT_DIMS) if big else None, penalty=penalty).view(h, w))
                units.append(s / s.norm(dim=1, keepdim=True).clamp_min(1e-8))
            self.units.append(units)
            index.append(torch.stack(found))
        self.index = torch.stack(index)  # (n, S, h, w)
        self.searches += 1

    def _rarity(self, run: int, style: int, rows: torch.Tensor) -> torch.Tensor:
        """λ × each style row's rarity, for run ``run``: computed at the first search of this scale, then kept
        (the style rows do not change within a scale); in the principal directions when M² × D is dear."""
        key = (run, style)
        if key not in self._rare_cache:
            big = rows.shape[0] ** 2 * rows.shape[1] > PROJECT_WORK
            self._rare_cache[key] = self.rare[run] * rarity(rows, principal(rows, PROJECT_DIMS) if big else None)
        return self._rare_cache[key]

    def _targets(self, index: torch.Tensor) -> torch.Tensor:
        """(n, S, h, w) indices → (n, S, D, h, w) unit-length neighbours."""
        return torch.stack([torch.stack([self.units[i][si][index[i, si]].permute(2, 0, 1)
                                         for si in range(index.shape[1])]) for i in range(index.shape[0])])

    def _value(self, hc: torch.Tensor, index: torch.Tensor, guides: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Σ over regions of its weight × Σ over styles of its blend × Σ_locations g·(1 − cos) / the region's mass."""
        targets = self._targets(index)
        dist = [cosine_distance(hc, targets[:, si]) for si in range(len(self.used))]  # each (n, h, w)
        total = hc.new_zeros(hc.shape[0])
        for r, blend in enumerate(self.blends):
            g = guides[r]
            for si, s in enumerate(self.used):
                d = dist[si] if g is None else dist[si] * g[:, 0]
                v = blend[:, s] * d.flatten(1).sum(1) / self.masses[r]
                total = total + (v if self.region_weights[r] is None else self.region_weights[r] * v)
        return total

    def forward(self, feats: Features, img: torch.Tensor) -> torch.Tensor:
        assert self.index is not None, "prepare() the neighbour term before its first step"
        return self._value(hypercolumns(feats, self.layers, self.factors, self.shape), self.index, self.guides)

    def tile_part(self, feats: Features, interior: Box, padded: Box) -> torch.Tensor:
        assert self.index is not None, "prepare() the neighbour term before its first step"
        py0, py1, px0, px1 = padded
        hc = hypercolumns(feats, self.layers, self.factors, grid_shape(py1 - py0, px1 - px0))
        hc = tiling.crop(hc, GRID_LAYER, interior, padded)
        index = tiling.global_crop(self.index, GRID_LAYER, interior)
        guides = [None if g is None else tiling.global_crop(g, GRID_LAYER, interior) for g in self.guides]
        return self._value(hc, index, guides)
