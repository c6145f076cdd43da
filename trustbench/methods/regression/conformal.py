"""Split conformal prediction intervals over any regression method's predictions.

Source: Lei, G'Sell, Rinaldo, Tibshirani & Wasserman, "Distribution-Free Predictive Inference for
Regression", JASA 2018 (split conformal; the σ-normalised score is their locally weighted variant, also
Papadopoulos et al. 2002). On a calibration split disjoint from training (the validation split here) the
scores are s_i = |y_i − ŷ_i| (``score: residual``) or |y_i − ŷ_i| / σ_i (``score: normalized``, σ the
method's predictive std); with n scores, q̂ is the ⌈(n + 1)(1 − α)⌉-th smallest, and the interval
ŷ ± q̂ (or ŷ ± q̂ σ) covers a new y with probability ≥ 1 − α when the rows are exchangeable. When
⌈(n + 1)(1 − α)⌉ > n the interval is infinite (q̂ = ∞), as the theory requires.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from trustbench.methods.regression.choices import CONFORMAL_SCORES


@dataclass(frozen=True)
class ConformalInterval:
    """The calibrated half-width factor q̂ for one score and level."""

    score: str
    alpha: float
    quantile: float

    @classmethod
    def calibrate(cls, y: Tensor, mean: Tensor, std: Tensor, score: str, alpha: float) -> ConformalInterval:
        """q̂ from the calibration rows' targets `y`, predicted means and stds (module docstring)."""
        if score not in CONFORMAL_SCORES:
            raise ValueError(f"conformal score must be one of {', '.join(CONFORMAL_SCORES)}; got {score!r}")
        if not 0 < alpha < 1:
            raise ValueError(f"conformal alpha must be in (0, 1); got {alpha}")
        scores = ((y - mean).abs() / (std if score == "normalized" else 1)).sort().values
        rank = math.ceil((len(scores) + 1) * (1 - alpha))
        quantile = math.inf if rank > len(scores) else float(scores[rank - 1])
        return cls(score, alpha, quantile)

    def bounds(self, mean: Tensor, std: Tensor) -> tuple[Tensor, Tensor]:
        """Lower and upper ends of the interval for predicted means and stds."""
        half = self.quantile * (std if self.score == "normalized" else torch.ones_like(mean))
        return mean - half, mean + half
