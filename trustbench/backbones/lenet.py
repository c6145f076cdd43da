"""LeNet-5 (LeCun et al., "Gradient-Based Learning Applied to Document Recognition", Proc. IEEE 1998)."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from trustbench.backbones.base import Backbone
from trustbench.backbones.layers import conv_output_size, require_image_shape

# LeNet-5 was drawn for 32×32 inputs; padding the first conv by 2 makes a 28×28 MNIST digit behave as
# a 32×32 one (28 → 28 → 14 → 10 → 5, the paper's 16 maps of 5×5).
_FIRST_PADDING = 2
# Smallest side that survives: 12 → 12 → 6 → 2 → 1.
_MIN_SIDE = 12


def _side_after_convs(side: int) -> int:
    side = conv_output_size(side, 5, padding=_FIRST_PADDING) // 2
    return conv_output_size(side, 5) // 2


class LeNet(Backbone):
    """conv 6@5×5 → pool → conv 16@5×5 → pool → fc 120 → fc 84 (features) → linear head.

    Modern form of the paper's network: ReLU instead of scaled tanh, max-pooling instead of trainable
    subsampling, full connections from S2 to C3, and a linear head in place of the RBF output units.
    A 3×32×32 input gives 16 maps of 6×6, so the first fc layer is sized from `input_shape`.

    Dropout(p) on the 84-d features, before the head, is where Gal & Ghahramani (ICML 2016) put it in
    their MNIST LeNet: before the last fully connected layer, the usual place in convnets. It is an
    identity at the default p=0 and what MC dropout samples when p>0. Dropout after every conv (their
    "lenet-all" variant, Gal & Ghahramani 2015) is not offered.
    """

    input_kind: ClassVar[Literal["image", "vector"]] = "image"

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        channels, height, width = require_image_shape("LeNet", input_shape, min_side=_MIN_SIDE)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=_FIRST_PADDING),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat_dim = 16 * _side_after_convs(height) * _side_after_convs(width)
        self.fc = nn.Sequential(nn.Linear(flat_dim, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.feature_dim = 84
        self.head = nn.Linear(84, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc(self.conv(x)))
