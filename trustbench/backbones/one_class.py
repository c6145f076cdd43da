"""The MNIST network of Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018), and its
autoencoder twin, for one-class novelty detection.

The encoder is the paper's MNIST LeNet-type network: conv 8@5×5 → batch norm → leaky ReLU → 2×2 max-pool,
conv 4@5×5 → batch norm → leaky ReLU → pool, then a linear map to a 32-d code. **No layer has a bias term**
and the batch norms have no affine shift (``affine=False``): Ruff et al. prove that with bias terms the
network can map every input to the hypersphere's centre, the trivial minimiser of the one-class
objective. `features(x)` is the code.

The head depends on `decoder`: without it the head is the identity (Deep SVDD scores the code itself);
with it the head decodes the code back to an image (linear to 4@(H/4)×(W/4), then twice nearest
upsampling ×2 and a 5×5 convolution, batch norm and leaky ReLU between them), the reconstruction the
autoencoder baseline scores. **Departure** from the reference decoder (``MNIST_LeNet_Autoencoder``:
transposed convolutions from a 2@4×4 map and a sigmoid output): upsampling by 4 exactly restores any
H, W divisible by 4, and the output is linear, so the inputs need not lie in [0, 1].

One-class networks have no class outputs: `num_classes` is accepted for the backbone contract and unused.
`dropout` (0 by default, as every backbone takes one for MC dropout) acts on the code.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import nn

from trustbench.backbones.base import Backbone
from trustbench.backbones.layers import require_image_shape

CODE_DIM = 32
BN_EPS = 1e-4  # the reference's batch-norm epsilon
LEAK = 0.01  # leaky ReLU slope (torch's default, as the reference)


def _conv_block(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=2, bias=False),
        nn.BatchNorm2d(out_channels, eps=BN_EPS, affine=False),
        nn.LeakyReLU(LEAK),
    ]


class OneClassLeNet(Backbone):
    """Bias-free LeNet-type encoder to a 32-d code; the head is the identity or, with `decoder`, a decoder."""

    input_kind: ClassVar[Literal["image", "vector"]] = "image"

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, decoder: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        channels, height, width = require_image_shape("OneClassLeNet", input_shape, min_side=4)
        if height % 4 or width % 4:
            raise ValueError(
                f"OneClassLeNet needs H and W divisible by 4; got input_shape {tuple(input_shape)}"
            )
        self.map_shape = (4, height // 4, width // 4)
        self.encoder = nn.Sequential(
            *_conv_block(channels, 8),
            nn.MaxPool2d(2),
            *_conv_block(8, 4),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * (height // 4) * (width // 4), CODE_DIM, bias=False),
        )
        self.dropout = nn.Dropout(dropout)
        self.feature_dim = CODE_DIM
        self.head = self._decoder(channels) if decoder else nn.Identity()

    def _decoder(self, channels: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(CODE_DIM, 4 * self.map_shape[1] * self.map_shape[2], bias=False),
            nn.Unflatten(1, self.map_shape),
            nn.LeakyReLU(LEAK),
            nn.Upsample(scale_factor=2),
            *_conv_block(4, 8),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(8, channels, kernel_size=5, padding=2, bias=False),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.encoder(x))
