"""What regression methods share: their prediction type and their validation step.

A regression method's `predict` returns a :class:`RegressionPrediction`: a predictive distribution per row
(in the standardised target units the model trains in; the suite moves it to the target's own units) and
one uncertainty score per row where higher = more uncertain, used by the ranking metrics (AUSE, AURG,
Spearman, OOD AUROC), which do not depend on its units. For a dense target (one value per pixel) every
pixel is a row, in the order of ``y.flatten()``, as depth evaluation scores pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trustbench.methods.regression.distributions import Distribution, concatenate


@dataclass(frozen=True)
class RegressionPrediction:
    """A method's output on a batch: a distribution per row and an uncertainty score (N,)."""

    distribution: Distribution
    uncertainty: Tensor


def concatenate_predictions(parts: list[RegressionPrediction]) -> RegressionPrediction:
    return RegressionPrediction(
        concatenate([p.distribution for p in parts]), torch.cat([p.uncertainty for p in parts])
    )


def output_rows(outputs: Tensor) -> Tensor:
    """A head's N × K outputs, or N × K × H × W per-pixel outputs, as rows × K (pixels in `flatten` order)."""
    return outputs.movedim(1, -1).reshape(-1, outputs.shape[1])


def gaussian_nll(mean: Tensor, log_variance: Tensor, y: Tensor, beta: float = 0.0) -> Tensor:
    """Mean Gaussian negative log-likelihood without the constant ½ log 2π, optionally β-NLL.

    β-NLL (Seitzer et al., "On the Pitfalls of Heteroscedastic Uncertainty Estimation with Probabilistic
    Neural Networks", ICLR 2022) weighs each row's term by stop-gradient(σ^{2β}); β = 0 is the plain NLL,
    β = 1 gives the mean the gradient of a squared error.
    """
    per_row = 0.5 * (log_variance + (y - mean) ** 2 / log_variance.exp())
    if beta:
        per_row = per_row * log_variance.detach().mul(beta).exp()
    return per_row.mean()


class RegressionValidation:
    """Mixed into a TrustModule: logs val/rmse and val/nll (standardised units) instead of accuracy."""

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        distribution = self.predict(x).distribution
        y = y.flatten()
        rmse = (distribution.mean() - y).pow(2).mean().sqrt()
        nll = -distribution.log_prob(y).clamp_min(-1e6).mean()
        self.log_dict({"val/rmse": rmse, "val/nll": nll}, on_epoch=True, prog_bar=True, sync_dist=True)
