"""VGG19's layer names and torchvision's indices: plain Python, no torch.

The names are what configs, the CLI and error messages speak, so they live apart from the network: checking a
setting (``--content-layers relu4_22``) or printing ``--help`` must not import torch.
"""

from __future__ import annotations

import difflib

# Convolutions per block and their channels, as in Simonyan & Zisserman's configuration E.
BLOCKS = (2, 2, 4, 4, 4)
CHANNELS = (64, 128, 256, 512, 512)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, n in enumerate(BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


LAYER_NAMES: tuple[str, ...] = _layer_names()  # 37 names, index = torchvision's index
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}
CONV_NAMES: tuple[str, ...] = tuple(n for n in LAYER_NAMES if n.startswith("conv"))


def resolve_layer(name: str | int) -> str:
    """A layer name from a name or torchvision index ("21" → conv4_2); unknown names raise with a suggestion."""
    text = str(name).strip()
    if text.isdigit():
        idx = int(text)
        if 0 <= idx < len(LAYER_NAMES):
            return LAYER_NAMES[idx]
        raise ValueError(f"layer index {idx} is out of range: VGG19 has indices 0..{len(LAYER_NAMES) - 1}")
    key = text.lower()
    if key in LAYER_INDEX:
        return key
    close = difflib.get_close_matches(key, LAYER_NAMES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"unknown layer {text!r}{hint}; valid layers: {', '.join(LAYER_NAMES)}")
