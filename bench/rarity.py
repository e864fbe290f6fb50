"""The neighbour search's rarity penalty (``neighbour_rarity``), measured at the search, on the gallery's portrait pairs.

For each pair and λ: the share of the photo's grid locations whose neighbour (the photo as the query, the neighbour
preset's layers, 256 px) lies in the painting's marked face (bench/pairs.py FACES), beside the face's share of the
painting, and the mean cosine of the matches (what λ costs). For astronaut+pencil_portrait also the mission badge's
locations matched to the drawing's eyes and mouth. No optimisation runs: a few seconds a pair.

    IMPASTO_GALLERY_INPUTS=DIR python bench/rarity.py
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image

from impasto.core.neighbours import grid_shape, hypercolumns, layer_scales, nearest, rarity
from impasto.presets import NEIGHBOUR_LAYERS
from impasto.weights import load_vgg
from pairs import FACES, resolve

PAIRS = ["astronaut+pencil_portrait", "reichstag+antimonocromatismo", "fjord+antimonocromatismo",
         "cornell+antimonocromatismo", "avril+antimonocromatismo", "reichstag+la_muse", "yosemite+peasant_dress",
         "sailboat+face_sketch"]
EYES = {"pencil_portrait": [(0.28, 0.42, 0.42, 0.52), (0.55, 0.42, 0.70, 0.52), (0.40, 0.67, 0.60, 0.76)]}
BADGE = {"astronaut": (0.27, 0.66, 0.39, 0.80)}  # the mission patch on the suit (fractions of the photo)
LAMBDAS = (0.0, 0.5, 1.0, 2.0)


def load(path, side: int = 256) -> torch.Tensor:
    im = Image.open(path).convert("RGB")
    s = side / max(im.size)
    im = im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float() / 255
    return x[..., : x.shape[-2] // 16 * 16, : x.shape[-1] // 16 * 16]


def boxes_mask(boxes, h: int, w: int) -> torch.Tensor:
    m = torch.zeros(h, w, dtype=torch.bool)
    for x0, y0, x1, y1 in boxes:
        m[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)] = True
    return m.flatten()


@torch.no_grad()
def main() -> int:
    vgg = load_vgg("bundled")
    layers = [k for k, _ in NEIGHBOUR_LAYERS]
    share = {k: w / sum(w for _, w in NEIGHBOUR_LAYERS) for k, w in NEIGHBOUR_LAYERS}
    print("pair | " + " | ".join(f"λ={lam}" for lam in LAMBDAS) + " | face's share | mean cos at each λ")
    for pair in PAIRS:
        photo, style = pair.split("+")
        cp, sp = resolve(photo, None), resolve(style, None)
        if cp is None or sp is None:
            print(f"{pair}: inputs missing (see bench/pairs.py)", file=sys.stderr)
            continue
        xc, xs = load(cp), load(sp)
        fc, fs = vgg(xc, layers), vgg(xs, layers)
        sc = layer_scales([fc], layers)
        fac = torch.tensor([[sc[k] * share[k] ** 0.5 for k in layers]])
        (hq, wq), (hs, ws) = grid_shape(*xc.shape[-2:]), grid_shape(*xs.shape[-2:])
        q = hypercolumns(fc, layers, fac, (hq, wq))[0].flatten(1).t()
        s = hypercolumns(fs, layers, fac, (hs, ws))[0].flatten(1).t()
        rare = rarity(s)
        for label, region, query in [("all", FACES[style], None)] + (
                [("badge→eyes", EYES[style], boxes_mask([BADGE[photo]], hq, wq))] if pair in ("astronaut+pencil_portrait",) else []):
            face = boxes_mask(region, hs, ws)
            cells, coss = [], []
            for lam in LAMBDAS:
                idx = nearest(q, s, penalty=lam * rare if lam else None)
                picked = idx if query is None else idx[query]
                cells.append(f"{float(face[picked].float().mean()):.3f}")
                qu = q - q.mean(0)
                su = s - s.mean(0)
                cos = (qu / qu.norm(dim=1, keepdim=True) * (su / su.norm(dim=1, keepdim=True))[idx]).sum(1)
                coss.append(f"{float(cos.mean()):.3f}")
            print(f"{pair} ({label}) | " + " | ".join(cells) + f" | {float(face.float().mean()):.3f} | " + " → ".join(coss))
    return 0


if __name__ == "__main__":
    sys.exit(main())
