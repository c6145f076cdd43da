"""ResNet-18 in the CIFAR form (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

The ImageNet network's 7×7 stride-2 stem and max-pool would shrink a 32×32 image to 8×8 before the first
block; the common CIFAR variant (as in github.com/kuangliu/pytorch-cifar) uses one 3×3 stride-1 conv
instead and keeps the four stages of two basic blocks each.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.backbones.layers import conv3x3, require_image_shape

_STAGE_MULTIPLIERS = (1, 2, 4, 8)  # stage widths as multiples of the first stage's
_BLOCKS_PER_STAGE = 2


class BasicBlock(nn.Module):
    """conv3×3-BN-ReLU-conv3×3-BN plus a shortcut, then ReLU (the paper's post-activation block).

    When the block changes width or resolution, the shortcut is a strided 1×1 conv with BN (option B).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            conv3x3(in_channels, out_channels, stride),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            conv3x3(out_channels, out_channels),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual(x) + self.shortcut(x))


class ResNet18(Backbone):
    """3×3 stem, stages of widths 64-128-256-512 (strides 1, 2, 2, 2), global average pool, linear head.

    `base_width` is the first stage's width (64 in the paper); the others are 2, 4 and 8 times it, so a
    smaller value gives the same architecture narrower (the smoke runs use 8: 0.4 % of the weights).
    Features are the 8·base_width-d pooled activations (512-d). Global pooling makes any input side >= 1
    work; 32×32 images reach the pool as 4×4 maps, as in the reference.

    Dropout(p) on the pooled features, before the head, is an identity at the default p=0 and what MC
    dropout samples when p>0: dropout before the last weight layer, as Gal & Ghahramani (ICML 2016) apply
    it to networks trained without dropout in their residual blocks (the reference ResNet has none).
    """

    input_kind: ClassVar[Literal["image", "vector"]] = "image"

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0, base_width: int = 64
    ) -> None:
        super().__init__()
        channels, _, _ = require_image_shape("ResNet18", input_shape)
        if base_width < 1:
            raise ValueError(f"ResNet18 needs base_width >= 1 channel, got {base_width}.")
        layers: list[nn.Module] = [conv3x3(channels, base_width), nn.BatchNorm2d(base_width), nn.ReLU()]
        channels = base_width
        for stage, width in enumerate(base_width * multiplier for multiplier in _STAGE_MULTIPLIERS):
            for block in range(_BLOCKS_PER_STAGE):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, width, stride))
                channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.feature_dim = channels
        self.head = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.body(x))
