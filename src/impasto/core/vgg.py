"""VGG19's convolutional part with named layers, run only as deep as asked.

The module list has torchvision's layout (``features.0.weight`` … ``features.34.bias``), so a torchvision state dict
loads as is and torchvision's indices ("21" is conv4_2) map to names. Unlike torchvision, the ReLUs are not in place:
an activation stored as ``conv4_2`` really is the convolution's output (the classic exercise's ``conv4_2`` was in fact
``relu4_2``, because the in-place ReLU overwrote it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

# The names live in layers.py (no torch: configs and the CLI check them); importing them from here still works.
from .layers import BLOCKS, CHANNELS, CONV_NAMES, LAYER_INDEX, LAYER_NAMES, resolve_layer

__all__ = ["CONV_NAMES", "LAYER_INDEX", "LAYER_NAMES", "PADDINGS", "VGG19", "resolve_layer"]

PADDINGS = ("zeros", "reflect", "replicate", "replicate-first")  # StyleConfig.padding's choices


class VGG19(nn.Module):
    """VGG19 features with its input preprocessing built in.

    ``forward(rgb, layers)`` takes RGB in [0, 1], shape (B, 3, H, W), and returns ``{name: activation}`` for the
    requested layers, running the network only up to the deepest of them.
    """

    def __init__(self, preprocess: nn.Module, pooling: str = "max", padding: str = "zeros",
                 channels_last: bool = False, init_weights: bool = True) -> None:
        """``init_weights=False`` leaves the convolutions' weights uninitialised, for a caller that loads a state
        dict next (weights.load_vgg): PyTorch's random init of 20 M weights took 0.36 s of every run's start-up."""
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, not {padding!r}")
        self.preprocess = preprocess
        self.pooling, self.padding = pooling, padding
        modules: list[nn.Module] = []
        in_ch = 3
        for n, ch in zip(BLOCKS, CHANNELS):
            for _ in range(n):
                # Departure (VGG and Gatys et al. pad with zeros): what a convolution sees past the image's edge is
                # a choice. Zeros are a frame of ImageNet's mean colour at the first convolution (zero after
                # preprocessing) and of no activity deeper, which the style loss answers with a band of paint along
                # the edges; reflect or replicate continue the picture. "replicate-first" is crowsonkb/style-transfer-pytorch's: the
                # first convolution replicates (the border pixels' colour, not black), the deeper ones keep zeros.
                mode = padding if padding != "replicate-first" else ("replicate" if not modules else "zeros")
                conv = ((nn.Conv2d if init_weights else _BareConv)(in_ch, ch, kernel_size=3, padding=1) if mode == "zeros"
                        else (_EdgeConv if init_weights else _BareEdgeConv)(in_ch, ch, mode))
                modules += [conv, nn.ReLU(inplace=False)]
                in_ch = ch
            # Departure (Gatys et al. use average pooling): max is the default because the networks were trained
            # with it; "avg" is the paper's choice. Average pooling is scaled by 2 (crowsonkb) so activations keep
            # roughly the magnitude the following layers were trained on.
            modules.append(nn.MaxPool2d(2, 2) if pooling == "max" else _ScaledAvgPool())
        self.features = nn.Sequential(*modules)
        if channels_last:
            # Optional (off in weights.load_vgg): the convolutions' weights stored channels-last, so oneDNN runs every
            # convolution in that layout. Under load it measured 0.78x a step; on an idle fp32 CPU 1.22x (slower),
            # with pictures up to 185/255 apart after 80 steps (bench/fp32.py): not the default.
            # Loading a state dict copies into these tensors and keeps the layout.
            self.features.to(memory_format=torch.channels_last)
        self.checkpoint = False  # recompute each block's activations during backward (less memory, one more forward)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = {resolve_layer(layer) for layer in layers}
        if not wanted:
            return {}
        last = max(LAYER_INDEX[name] for name in wanted)
        x = self.preprocess(rgb)
        if self.checkpoint and torch.is_grad_enabled() and x.requires_grad:
            return self._checkpointed(x, wanted, last)
        out: dict[str, torch.Tensor] = {}
        for idx in range(last + 1):
            x = self._layer(idx, x, wanted)
            name = LAYER_NAMES[idx]
            if name in wanted:
                out[name] = x
        return out

    def _layer(self, idx: int, x: torch.Tensor, wanted: set[str]) -> torch.Tensor:
        # A ReLU rectifies its convolution's output in place unless that output was asked for (and kept): the
        # convolution's backward needs its input, not its output, so nothing autograd saved is overwritten, and one
        # activation's worth of memory traffic per layer is saved (the modules stay out of place: conv4_2 is the
        # convolution's output whenever it is asked for).
        if LAYER_NAMES[idx].startswith("relu") and LAYER_NAMES[idx - 1] not in wanted:
            return torch.relu_(x)
        return self.features[idx](x)

    def _checkpointed(self, x: torch.Tensor, wanted: set[str], last: int) -> dict[str, torch.Tensor]:
        """Activation checkpointing per block (conv…pool): only block outputs and requested layers are kept for
        backward; each block's inner activations are recomputed when its gradient is needed."""
        from torch.utils.checkpoint import checkpoint

        out: dict[str, torch.Tensor] = {}
        start = 0
        while start <= last:
            end = start
            while end < last and not LAYER_NAMES[end].startswith("pool"):
                end += 1
            names = [LAYER_NAMES[i] for i in range(start, end + 1) if LAYER_NAMES[i] in wanted]

            def run(h: torch.Tensor, a: int = start, b: int = end) -> tuple[torch.Tensor, ...]:
                kept = []
                for i in range(a, b + 1):
                    h = self._layer(i, h, wanted)
                    if LAYER_NAMES[i] in wanted:
                        kept.append(h)
                return (h, *kept)

            x, *kept = checkpoint(run, x, use_reentrant=False)
            out.update(zip(names, kept))
            start = end + 1
        return out

    def shapes(self, height: int, width: int, layers: Sequence[str] = LAYER_NAMES) -> dict[str, tuple[int, int, int]]:
        """(C, H, W) of each layer for an input size, computed from the architecture without running it."""
        result = {}
        for name in layers:
            h, w = height, width
            for _ in range(int(name[4]) - (0 if name.startswith("pool") else 1)):
                h, w = h // 2, w // 2
            result[name] = (CHANNELS[int(name[4]) - 1], h, w)
        return result


class _EdgeConv(nn.Conv2d):
    """A 3×3 convolution whose one-pixel border is ``reflect`` or ``replicate`` padding (its weights are nn.Conv2d's:
    state dicts load as they are). A side of one pixel has nothing to reflect: it is replicated."""

    def __init__(self, in_ch: int, out_ch: int, mode: str) -> None:
        super().__init__(in_ch, out_ch, kernel_size=3, padding=0)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) → (B, C', H, W)
        mode = self.mode if min(x.shape[-2:]) > 1 else "replicate"
        return super().forward(nn.functional.pad(x, (1, 1, 1, 1), mode=mode))


class _Bare:
    """A convolution that skips PyTorch's random init (its weights, torch.empty's, are loaded next)."""

    def reset_parameters(self) -> None:
        pass


class _BareConv(_Bare, nn.Conv2d):
    pass


class _BareEdgeConv(_Bare, _EdgeConv):
    pass


class _ScaledAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.avg_pool2d(x, 2, 2) * 2.0
