"""What each weight source expects of its input, as small modules next to the model.

Every image inside impasto is RGB in [0, 1], shape (B, 3, H, W). Only these modules know about BGR, 0-255,
means and standard deviations.
"""

from __future__ import annotations

import torch
from torch import nn


class CaffePreprocess(nn.Module):
    """The original VGG19 (Caffe, via Keras): BGR, 0-255, per-channel ImageNet mean subtracted."""

    name = "caffe"
    MEAN_BGR = (103.939, 116.779, 123.68)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(self.MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        bgr = rgb.flip(1) * 255.0
        return bgr - self.mean

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return ((x + self.mean) / 255.0).flip(1)


class TorchvisionPreprocess(nn.Module):
    """torchvision's ImageNet models: RGB in [0, 1], normalised by ImageNet mean and std."""

    name = "torchvision"
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return (rgb - self.mean) / self.std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


PREPROCESS = {"caffe": CaffePreprocess, "torchvision": TorchvisionPreprocess}


def make_preprocess(name: str) -> nn.Module:
    return PREPROCESS[name]()
