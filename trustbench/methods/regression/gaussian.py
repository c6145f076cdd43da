"""Heteroscedastic Gaussian regression: the network outputs a mean and a log-variance per input.

Source: Nix & Weigend, "Estimating the mean and variance of the target probability distribution", ICNN
1994; the loss of Kendall & Gal, "What Uncertainties Do We Need in Bayesian Deep Learning for Computer
Vision?", NeurIPS 2017 (Gaussian NLL with a log-variance head), optionally β-NLL (Seitzer et al., ICLR
2022; ``beta``). The backbone's head has two outputs (``method.head_outputs``): mean and log σ². The
log-variance is clamped to [−10, 10] (σ between 0.007 and 148 standardised units), which reference code
leaves open: an unbounded log-variance overflows on the first batches of a tabular MLP. Uncertainty: σ.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, SchedulerFactory, TrustModule
from trustbench.methods.regression.base import (
    RegressionPrediction,
    RegressionValidation,
    gaussian_nll,
    output_rows,
)
from trustbench.methods.regression.distributions import GaussianMixture

LOG_VARIANCE_RANGE = (-10.0, 10.0)


def mean_and_log_variance(network: torch.nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """The two outputs of a Gaussian head as rows (one per input, or per pixel of a dense head), the
    log-variance clamped to :data:`LOG_VARIANCE_RANGE`."""
    rows = output_rows(network(x))
    return rows[:, 0], rows[:, 1].clamp(*LOG_VARIANCE_RANGE)


class GaussianRegressor(RegressionValidation, TrustModule):
    """Mean and log-variance head trained by Gaussian NLL (β-NLL when ``beta`` > 0)."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        beta: float = 0.0,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        if not 0 <= beta <= 1:
            raise ValueError(f"gaussian beta must be in [0, 1] (0: NLL, 1: MSE-like mean); got {beta}")
        self.beta = beta

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return gaussian_nll(*mean_and_log_variance(self.backbone, x), y.flatten(), self.beta)

    def predict(self, x: Tensor) -> RegressionPrediction:
        mean, log_variance = mean_and_log_variance(self.backbone, x)
        std = (0.5 * log_variance).exp()
        return RegressionPrediction(GaussianMixture.gaussian(mean, std), std)
