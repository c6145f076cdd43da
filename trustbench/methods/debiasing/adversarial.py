"""Adversarial debiasing: an adversary predicts the protected group from the classifier's output, and the
classifier is trained to defeat it through a gradient-reversal layer.

Zhang, Lemoine & Mitchell, "Mitigating Unwanted Biases with Adversarial Learning", AIES 2018. The
adversary sees ŝ = σ((1 + |c|)·z) for the classifier's favourable-class logit margin z (c learnable, as in
the paper and AIF360), and also ŝ·y and ŝ·(1 − y) when the goal is equalised odds (the adversary then
knows the label, so only information about S beyond Y is removed). Both players descend one loss,
cross-entropy + BCE(adversary), with the adversary's input passed through a gradient reversal
(Ganin & Lempitsky 2015) scaled by `lam`: the adversary minimises its BCE, the classifier maximises it.
The paper's extra projection term (removing the component of the classifier's gradient that helps the
adversary) is not used; gradient reversal is the common simplification (e.g. fairtorch, FairGrad).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, SchedulerFactory
from trustbench.methods.debiasing.classifier import FairClassifier

Goal = Literal["demographic_parity", "equalized_odds"]


class GradientReversal(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by −`scale` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, scale: float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


class AdversarialDebiasing(FairClassifier):
    """Cross-entropy + the adversary's BCE on S, reversed with weight `lam` for the classifier."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        lam: float = 1.0,
        goal: Goal = "demographic_parity",
    ) -> None:
        if goal not in ("demographic_parity", "equalized_odds"):
            raise ValueError(f"goal must be 'demographic_parity' or 'equalized_odds'; got {goal!r}")
        super().__init__(backbone, num_classes, optimizer, scheduler)
        self.lam = lam
        self.goal = goal
        self.sharpness = nn.Parameter(torch.ones(()))
        self.adversary = nn.Linear(1 if goal == "demographic_parity" else 3, 1)

    def fairness_term(self, logits: Tensor, y: Tensor, group: Tensor) -> Tensor:
        margin = GradientReversal.apply(logits[:, 1] - logits[:, 0], self.lam)
        soft = torch.sigmoid((1 + self.sharpness.abs()) * margin).unsqueeze(1)
        if self.goal == "equalized_odds":
            label = y.to(soft.dtype).unsqueeze(1)
            soft = torch.cat([soft, soft * label, soft * (1 - label)], dim=1)
        return F.binary_cross_entropy_with_logits(self.adversary(soft).squeeze(1), group.to(soft.dtype))
