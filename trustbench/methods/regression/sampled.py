"""MC dropout and deep ensembles for regression: Gaussian heads sampled, scored as their mixture.

Both extend the classification methods of :mod:`trustbench.methods.uncertainty` (dropout sampling, member
initialisation and per-member backward are theirs); only the head, the loss and the prediction differ.

- MC dropout (Gal & Ghahramani, ICML 2016; the heteroscedastic variant of Kendall & Gal, NeurIPS 2017):
  the Gaussian NLL of :mod:`~trustbench.methods.regression.gaussian` with dropout on, T passes at test time.
- Deep ensembles (Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017): M Gaussian heads, each trained on
  its own NLL. The paper's adversarial training is not used (as for classification here).

The T (or M) Gaussians N(μ_t, σ_t²) form an equal-weight mixture whose mean is the prediction; its
variance splits into aleatoric E_t[σ_t²] and epistemic Var_t[μ_t], reported apart (``reg/aleatoric``,
``reg/epistemic``). The uncertainty score is the total standard deviation. Reference code (the paper's
Figure 1) scores a Gaussian with the mixture's mean and variance; the NLL here is the mixture's own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trustbench.methods.regression.base import RegressionPrediction, RegressionValidation, gaussian_nll
from trustbench.methods.regression.distributions import GaussianMixture
from trustbench.methods.regression.gaussian import mean_and_log_variance
from trustbench.methods.uncertainty.ensemble import DeepEnsemble
from trustbench.methods.uncertainty.mc_dropout import MCDropout, dropout_sampling


def mixture_prediction(networks: list[nn.Module], x: Tensor) -> RegressionPrediction:
    """The equal-weight mixture of the Gaussian heads `networks` (or T passes of one) on `x`."""
    means, log_variances = zip(*(mean_and_log_variance(network, x) for network in networks), strict=True)
    mixture = GaussianMixture.equal_weights(torch.stack(means), (0.5 * torch.stack(log_variances)).exp())
    return RegressionPrediction(mixture, mixture.variance().sqrt())


class RegressionMCDropout(RegressionValidation, MCDropout):
    """Gaussian NLL training with dropout; `num_samples` dropout passes form the mixture."""

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return gaussian_nll(*mean_and_log_variance(self.backbone, x), y.flatten())

    def predict(self, x: Tensor) -> RegressionPrediction:
        with dropout_sampling(self.backbone):
            return mixture_prediction([self.backbone] * self.num_samples, x)


class RegressionEnsemble(RegressionValidation, DeepEnsemble):
    """`num_members` Gaussian heads, each trained on its own NLL; their mixture is the prediction."""

    def member_loss(self, member: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return gaussian_nll(*mean_and_log_variance(member, x), y.flatten())

    def predict(self, x: Tensor) -> RegressionPrediction:
        return mixture_prediction(list(self.members), x)
