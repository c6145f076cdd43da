"""SLURP: a side learner that reads a frozen regressor and predicts how wrong it is.

Source: Yu, Franchi & Aldea, "SLURP: Side Learning Uncertainty for Regression Problems", BMVC 2021
(arXiv 2110.11182; code: xuanlongORZ/SLURP_uncertainty_estimate). The main regressor f is trained first
and frozen (here: the ``gaussian`` method's network, reused from the model store, of which only the mean
is read); the side learner g reads f's penultimate features h(x) and its prediction ŷ and outputs a logit u.

- ``loss: bce`` (the depth and flow code): BCE-with-logits of u against tanh(λ·|ŷ − y|), λ = 1 / (range
  of the training targets); the uncertainty is arctanh(σ(u)) / λ, an estimate of |ŷ − y| in target units.
- ``loss: nll`` (the 1-D toy): g outputs log σ², trained by the Gaussian NLL of y around the detached ŷ.

Where this departs from the reference code: g is a per-row (per-pixel for dense targets) MLP, written as
1×1 convolutions, on [h(x), E(ŷ)] with E a one-layer encoder of the prediction, instead of SLURP's DenseNet
encoder of the prediction map fused with the main encoder at five scales (our maps are 28×28, the main
model's features one scale). It is fitted on the training split, as in
the paper, with Adam. For NLL, intervals and calibration the ``bce`` output s is read as a Gaussian with
E|ŷ − y| = s, i.e. σ = s·√(π/2); SLURP itself reports only the uncertainty map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.data.loaders import epoch_permutation
from trustbench.methods.base import TrustModule
from trustbench.methods.regression.base import RegressionPrediction, gaussian_nll, output_rows
from trustbench.methods.regression.choices import SIDE_LEARNER_LOSSES
from trustbench.methods.regression.distributions import GaussianMixture

ARCTANH_LIMIT = 1 - 1e-6


@dataclass(frozen=True)
class SideSettings:
    """``method.side_learner``: the side learner's loss, width and training recipe."""

    loss: str = "bce"
    hidden: int = 64
    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.loss not in SIDE_LEARNER_LOSSES:
            raise ValueError(
                f"slurp side_learner.loss must be one of {', '.join(SIDE_LEARNER_LOSSES)}; got {self.loss!r}"
            )


class SideLearner(nn.Module):
    """g(h(x), ŷ) → one logit (bce) or log σ² (nll) per row, built of 1×1 convolutions so that a feature
    vector (read as a 1×1 map) and a dense decoder's feature maps (one row per pixel) are read alike."""

    def __init__(self, feature_dim: int, hidden: int) -> None:
        super().__init__()
        self.prediction_encoder = nn.Conv2d(1, hidden, kernel_size=1)
        self.fuse = nn.Sequential(
            nn.Conv2d(feature_dim + hidden, hidden, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, kernel_size=1),
        )

    def forward(self, features: Tensor, prediction: Tensor) -> Tensor:
        maps = features if features.dim() == 4 else features[:, :, None, None]
        encoded = F.relu(self.prediction_encoder(prediction.view(len(maps), 1, *maps.shape[2:])))
        return output_rows(self.fuse(torch.cat([maps, encoded], dim=1)))[:, 0]


class Slurp:
    """The frozen main module and its fitted side learner; `predict` gives SLURP's uncertainty."""

    def __init__(self, main: TrustModule, settings: SideSettings, target_span: float) -> None:
        if main.backbone.feature_dim is None:
            raise ValueError("slurp reads the main model's features; use a backbone with a feature layer")
        self.main, self.settings = main, settings
        self.scale = 1 / target_span  # λ
        self.side = SideLearner(main.backbone.feature_dim, settings.hidden).to(main.device)

    @torch.no_grad()
    def _frozen(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.main.eval()
        return self.main.backbone.features(x), self.main.predict(x).distribution.mean()

    def fit(self, x: Tensor, y: Tensor, seed: int) -> None:
        """Train the side learner on (x, y), batch by batch, with the main model frozen (its outputs are
        recomputed per batch: a dense decoder's feature maps of a whole split would not fit in memory)."""
        optimizer = torch.optim.Adam(self.side.parameters(), lr=self.settings.lr)
        self.side.train()
        for epoch in range(self.settings.epochs):
            order = epoch_permutation(len(x), seed, epoch)
            for start in range(0, len(x), self.settings.batch_size):
                rows = order[start : start + self.settings.batch_size]
                features, prediction = self._frozen(x[rows])
                target = y[rows].flatten()
                out = self.side(features, prediction)
                if self.settings.loss == "bce":
                    error = (prediction - target).abs()
                    loss = F.binary_cross_entropy_with_logits(out, torch.tanh(self.scale * error))
                else:
                    loss = gaussian_nll(prediction, out.clamp(-10, 10), target)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self.side.eval()

    @torch.no_grad()
    def predict(self, x: Tensor) -> RegressionPrediction:
        features, prediction = self._frozen(x)
        out = self.side(features, prediction)
        if self.settings.loss == "bce":
            expected_error = torch.atanh(torch.sigmoid(out).clamp(max=ARCTANH_LIMIT)) / self.scale
            std = (expected_error * math.sqrt(math.pi / 2)).clamp_min(1e-6)
            return RegressionPrediction(GaussianMixture.gaussian(prediction, std), expected_error)
        std = (0.5 * out.clamp(-10, 10)).exp()
        return RegressionPrediction(GaussianMixture.gaussian(prediction, std), std)
