"""W2reg: a classifier trained with a Wasserstein-2 penalty between its groups' outputs.

Risser, Gonzalez Sanz, Vincenot, Loubes, "Tackling Algorithmic Bias in Neural-Network Classifiers using
Wasserstein-2 Regularization", JMIV 2022: loss = task loss + λ·W₂²(law of h(X) | S=0, law of h(X) | S=1),
with h(x) = P̂(Y = 1 | x). The penalty (:class:`W2Penalty`) is computed on each mini-batch and
differentiated by autograd. Its λ is not the authors' λ: their hand-written gradient divides by the
histogram density of a large reference sample, so it is hundreds of times larger than the gradient of
W₂² itself, and their λ = 1e-5 plays the role of a λ of order 1 here.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from trustbench.backbones.base import Backbone
from trustbench.errors import ConfigError
from trustbench.methods.base import OptimizerFactory, SchedulerFactory
from trustbench.methods.debiasing.classifier import FairClassifier, favourable_probability
from trustbench.methods.debiasing.wasserstein import W2Penalty


class W2Reg(FairClassifier):
    """Cross-entropy + `lam` · W₂² between the groups' predictions (``compare="predictions"``, targets
    disparate impact) or their errors (``compare="errors"``, targets equal error rates)."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        lam: float = 1.0,
        compare: Literal["predictions", "errors"] = "predictions",
        n_quantiles: int | None = None,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        if lam < 0:
            raise ConfigError(f"method.lam weighs the W2 penalty and must be >= 0; got {lam}")
        self.lam = lam
        self.penalty = W2Penalty(compare=compare, n_quantiles=n_quantiles)

    def fairness_term(self, logits: Tensor, y: Tensor, group: Tensor) -> Tensor:
        return self.penalty.unchecked(favourable_probability(logits), group, y, weight=self.lam)
