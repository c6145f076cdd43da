"""Autoencoder reconstruction error as a one-class novelty score: the baseline of Deep SVDD's MNIST and
CIFAR-10 one-class experiments (Ruff et al., ICML 2018, "DCAE"; Masci et al. 2011).

The network (backbone ``one_class_autoencoder``: Deep SVDD's bias-free encoder and a mirrored decoder) is
trained on the normal class to minimise Σ_pixels (x̂ − x)²; the novelty score is the same sum per input.
"""

from __future__ import annotations

import torch

from trustbench.methods.novelty.one_class import OneClassModule


class AutoencoderNovelty(OneClassModule):
    """Per-input sum of squared reconstruction errors; the backbone's head must be a decoder."""

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        reconstruction = self.backbone(x)
        if reconstruction.shape != x.shape:
            raise ValueError(
                "method autoencoder reconstructs its inputs, but the backbone outputs shape "
                f"{tuple(reconstruction.shape)} for inputs {tuple(x.shape)}; "
                "use backbone=one_class_autoencoder"
            )
        return (reconstruction - x).pow(2).flatten(1).sum(dim=1)
