"""Wide residual network (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

Layout follows the authors' code (github.com/szagoruyko/wide-residual-networks): a 3×3 stem of 16
filters, three groups of (depth - 4) / 6 pre-activation blocks of widths 16k, 32k, 64k, and a final
BN-ReLU before global average pooling. Dropout sits between the two convs of each block, as in the paper.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from trustbench.backbones.base import Backbone
from trustbench.backbones.layers import conv3x3, require_image_shape

_STEM_WIDTH = 16
# (base width, stride) of the three groups; widths are multiplied by the widen factor k.
_GROUPS = ((16, 1), (32, 2), (64, 2))


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3×3-BN-ReLU-dropout-conv3×3, added to a shortcut; no activation after the sum.

    When width or resolution changes, the shortcut is a strided 1×1 conv applied to the block's
    pre-activated input (BN-ReLU(x)); otherwise it is x itself.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.preactivate = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU())
        self.residual = nn.Sequential(
            conv3x3(in_channels, out_channels, stride),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(dropout),
            conv3x3(out_channels, out_channels),
        )
        self.projection: nn.Conv2d | None = None
        if stride != 1 or in_channels != out_channels:
            self.projection = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.preactivate(x)
        shortcut = x if self.projection is None else self.projection(activated)
        return self.residual(activated) + shortcut


class WideResNet(Backbone):
    """WRN-depth-k: features are the 64·k-d globally pooled output of the final BN-ReLU.

    `depth` must be 6n + 4 (n blocks per group); WRN-28-10 with dropout 0.3 is the paper's CIFAR model.
    The same in-block dropout is what MC dropout samples; uncertainty-baselines' MC dropout WRN-28-10
    (baselines/cifar/dropout.py) keeps it in the residual branches at rate 0.1.
    Global pooling makes any input side >= 1 work; 32×32 images reach the pool as 8×8 maps.
    """

    input_kind: ClassVar[Literal["image", "vector"]] = "image"

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 28,
        widen_factor: int = 10,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        channels, _, _ = require_image_shape("WideResNet", input_shape)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...); got depth={depth}."
            )
        blocks_per_group = (depth - 4) // 6
        layers: list[nn.Module] = [conv3x3(channels, _STEM_WIDTH)]
        channels = _STEM_WIDTH
        for base_width, group_stride in _GROUPS:
            width = base_width * widen_factor
            for block in range(blocks_per_group):
                layers.append(WideBasicBlock(channels, width, group_stride if block == 0 else 1, dropout))
                channels = width
        layers += [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.feature_dim = channels
        self.head = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
