"""Demographic-parity penalty: the squared gap between the groups' mean predicted probabilities.

The simplest differentiable relaxation of statistical parity (e.g. Zafar et al. 2017 constrain a
covariance; Madras et al. 2018 and fairtorch penalise the mean gap): λ·(E[h(X) | S=0] − E[h(X) | S=1])².
It matches the first moment of the two output distributions only, where W₂ matches all of them.
"""

from __future__ import annotations

from torch import Tensor

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, SchedulerFactory
from trustbench.methods.debiasing.classifier import FairClassifier, favourable_probability, split_by_group


class DemographicParityPenalty(FairClassifier):
    """Cross-entropy + `lam` · (mean h(x) over S=0 − mean h(x) over S=1)²; 0 on a one-group batch."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        lam: float = 1.0,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        self.lam = lam

    def fairness_term(self, logits: Tensor, y: Tensor, group: Tensor) -> Tensor:
        probs = favourable_probability(logits)
        groups = split_by_group(probs, group)
        if groups is None:
            return probs.sum() * 0.0
        unprivileged, privileged = groups
        return self.lam * (unprivileged.mean() - privileged.mean()).square()
