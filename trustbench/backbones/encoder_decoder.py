"""A small encoder–decoder for dense (per-pixel) regression: the stand-in for a depth network.

Two 3×3 conv + ReLU + 2×2 max-pool stages halve the image twice (28 → 14 → 7); two nearest-neighbour
upsampling + 3×3 conv stages bring it back, the second one also reading the first stage's maps (a U-Net
skip, Ronneberger et al. 2015, so pixel positions survive the bottleneck). `features(x)` are the last
decoder maps, N × `width` × H × W, and the head is a 1×1 convolution to `num_classes` maps: one value per
output and pixel (a mean and a log-variance, or K bin logits). Dropout (`dropout`) sits before the head, on
every feature of every pixel, where MC dropout samples it. H and W must be multiples of 4.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.backbones.layers import require_image_shape


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU())


class EncoderDecoder(Backbone):
    """Per-pixel outputs N × `num_classes` × H × W (module docstring)."""

    input_kind: ClassVar[Literal["image", "vector"]] = "image"
    dense_output: ClassVar[bool] = True

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: int = 16, dropout: float = 0.0):
        super().__init__()
        channels, height, width_px = require_image_shape("EncoderDecoder", input_shape, min_side=4)
        if height % 4 or width_px % 4:
            raise ValueError(
                f"EncoderDecoder needs H and W divisible by 4; got input_shape {tuple(input_shape)}"
            )
        self.down1, self.down2 = _conv(channels, width), _conv(width, 2 * width)
        self.up1, self.up2 = _conv(2 * width, width), _conv(2 * width, width)
        self.dropout = nn.Dropout(dropout)
        self.feature_dim = width
        self.head = nn.Conv2d(width, num_classes, kernel_size=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        first = self.down1(x)  # H × W
        bottleneck = self.down2(F.max_pool2d(first, 2))  # H/2
        up = self.up1(F.interpolate(F.max_pool2d(bottleneck, 2), scale_factor=2))  # H/4 → H/2
        up = F.interpolate(up, scale_factor=2)  # H
        return self.dropout(self.up2(torch.cat([up, first], dim=1)))
