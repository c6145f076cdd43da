"""Classification as regression (CaR): a softmax over K target bins, its expectation as the prediction.

Source: Yu, Franchi & Aldea, "On Monocular Depth Estimation and Uncertainty Quantification using
Classification Approaches for Regression", ICIP 2022 (arXiv 2202.12369). The training targets' range
[min, max] is cut into K bins, uniform or log-spaced (``spacing``; log needs positive targets, as depth
is), made in the target's own units and then standardised like the targets. The backbone's head has K
outputs; training is cross-entropy on the bin holding y (targets beyond the training range fall in the end
bins). The prediction is Σ_k p_k c_k over the bin centres, and the uncertainty comes from the same forward
pass: ``variance`` Σ_k p_k (c_k − ŷ)² or ``entropy`` −Σ_k p_k ln p_k (``score``).

Where this departs from the paper: no reference code was found, so the hard-label cross-entropy (rather
than an ordinal or soft-label loss) is our reading; and the predictive density used for NLL, intervals
and calibration is the piecewise-uniform one the bin probabilities imply
(:class:`~trustbench.methods.regression.distributions.BinnedDensity`), which the paper does not define.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, SchedulerFactory, TrustModule
from trustbench.methods.regression.base import RegressionPrediction, RegressionValidation, output_rows
from trustbench.methods.regression.choices import CAR_SCORES, CAR_SPACINGS
from trustbench.methods.regression.distributions import BinnedDensity
from trustbench.metrics.ood import entropy_score


def bin_edges(low: float, high: float, bins: int, spacing: str) -> Tensor:
    """K + 1 increasing edges from `low` to `high` (target units), evenly or geometrically spaced."""
    if spacing not in CAR_SPACINGS:
        raise ValueError(f"car spacing must be one of {', '.join(CAR_SPACINGS)}; got {spacing!r}")
    if bins < 2 or not high > low:
        raise ValueError(
            f"car needs bins >= 2 and a target range high > low; got {bins} bins on [{low}, {high}]"
        )
    if spacing == "uniform":
        return torch.linspace(low, high, bins + 1, dtype=torch.float64)
    if low <= 0:
        raise ValueError(
            f"car spacing=log needs positive targets, but the training targets reach {low}; "
            "use spacing=uniform"
        )
    return torch.logspace(
        torch.tensor(low).log10(), torch.tensor(high).log10(), bins + 1, dtype=torch.float64
    )


class ClassificationAsRegression(RegressionValidation, TrustModule):
    """K-bin softmax regression (module docstring). `target_range` is the training targets' [min, max] in
    their own units and `target_scale` their (mean, std); the runner fills both from the data."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        bins: int = 32,
        spacing: str = "uniform",
        score: str = "variance",
        target_range: tuple[float, float] = (-1.0, 1.0),
        target_scale: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        if score not in CAR_SCORES:
            raise ValueError(f"car score must be one of {', '.join(CAR_SCORES)}; got {score!r}")
        if num_classes != bins:
            raise ValueError(f"car needs a head of bins={bins} outputs; the backbone has {num_classes}")
        mean, std = target_scale
        self.register_buffer("edges", ((bin_edges(*target_range, bins, spacing) - mean) / std).float())
        self.score = score

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        inner = self.edges[1:-1].contiguous()
        return F.cross_entropy(self.backbone(x), torch.bucketize(y.contiguous(), inner, right=True))

    def predict(self, x: Tensor) -> RegressionPrediction:
        probs = output_rows(self.backbone(x)).softmax(dim=1)
        density = BinnedDensity(self.edges.expand(len(probs), -1), probs)
        uncertainty = density.centre_variance() if self.score == "variance" else entropy_score(probs)
        return RegressionPrediction(density, uncertainty)
