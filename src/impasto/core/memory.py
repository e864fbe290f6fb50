"""A memory estimate from the layer shapes, checked before a run so that it is refused rather than killed."""

from __future__ import annotations

from .vgg import LAYER_INDEX, LAYER_NAMES

_CHANNELS = (64, 128, 256, 512, 512)
WEIGHT_BYTES = 80_000_000  # the 16 convolutions in fp32
PROCESS_BYTES = 500_000_000  # Python, torch and the inputs before the first step (measured: ~0.4 GB)


def estimate_bytes(height: int, width: int, layers: list[str], batch: int = 1, lbfgs_history: int = 0,
                   tile: int = 0, checkpoint: bool = False, halo: int = 96, padding: str = "zeros") -> int:
    """Peak bytes of one optimisation step: activations kept for backward (fp32), their gradients, the weights.

    Each conv/relu output is stored once for backward and its gradient is alive once during backward (×2); pooling
    keeps its input's indices. That count is an upper bound: measured peaks (bench/memory.py, fp32, CPU) were
    0.43-0.48 of it at 1024-2048 px, as autograd frees each gradient once used; so it is scaled by 0.6, plus the
    whole-image buffers (pixels, Adam's moments, tiled content targets) and what a process holds before the run
    (PROCESS_BYTES). That estimate is 1.13-1.16x the measured peaks at 512-2048 px and 1.08x at 4096 px with
    1024 px tiles (6.1 GiB).
    With tiles, VGG sees one tile (plus its halo) at a time, and only the pixels, the optimiser's state and the
    content targets are whole-image. Checkpointing keeps about half of the activations (measured).
    A ``padding`` other than zeros pads each convolution's input into a copy that autograd keeps as well (the first
    convolution's only, for replicate-first): counted, not yet measured.
    """
    if not layers:
        return WEIGHT_BYTES
    full = (height, width)
    if tile:
        height, width = min(height, tile + 2 * halo), min(width, tile + 2 * halo)
    last = max(LAYER_INDEX[name] for name in layers)
    total = 0
    h, w = height, width
    in_ch = 3
    for name in LAYER_NAMES[: last + 1]:
        block = int(name[4])
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        elif name.startswith("conv"):
            if padding != "zeros" and (padding != "replicate-first" or name == "conv1_1"):
                total += in_ch * (h + 2) * (w + 2)
            in_ch = _CHANNELS[block - 1]
        total += _CHANNELS[block - 1] * h * w
    activations = total * 4 * 2 * (0.5 if checkpoint else 1.0)
    pixels = 3 * full[0] * full[1] * 4 * (8 + 2 * lbfgs_history)
    targets = 512 * full[0] * full[1] // 64 * 4 if tile else 0  # a relu4_x content map, whole-image
    grams = sum(_CHANNELS[int(n[4]) - 1] ** 2 for n in layers) * 4 * 4
    # Only VGG's activations shrink below the count (autograd frees them as it goes); the whole-image buffers do not.
    return int((activations * 0.6 + pixels + targets + grams) * batch) + WEIGHT_BYTES + PROCESS_BYTES
