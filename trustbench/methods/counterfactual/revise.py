"""REVISE: counterfactuals found by gradient descent in a VAE's latent space.

Joshi et al., "Towards Realistic Individual Recourse and Actionable Explanations in Black-Box Decision
Making Systems", 2019 (arXiv:1907.09615).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier
from trustbench.methods.counterfactual.generative import LatentExplainer, range_scaled_l1


class Revise(LatentExplainer):
    """Start at the VAE's code of x and minimise CE(f(dec(z)), target) + λ·d(dec(z), x) over z.

    d is the L1 distance, averaged over input elements and measured in units of each element's range
    (:func:`~trustbench.methods.counterfactual.generative.range_scaled_l1`), so `distance_weight` (λ)
    does not depend on the input size. As in the paper's algorithm, the search for an input stops as soon
    as the (snapped) decoded point is classified as the target; inputs that never get there return the
    last point after `steps` Adam steps of size `lr`.
    """

    name = "revise"

    def __init__(
        self,
        distance_weight: float = 0.1,
        steps: int = 300,
        lr: float = 0.05,
        generative: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(steps=steps, lr=lr, generative=generative)
        self.distance_weight = distance_weight

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        vae = self.fitted_vae(x.device)
        with torch.no_grad():
            start = vae.encode(x)

        def objective(z: Tensor, candidate: Tensor) -> Tensor:
            misfit = F.cross_entropy(model(candidate), target, reduction="none")
            return misfit + self.distance_weight * range_scaled_l1(candidate, x, constraints)

        def reached(answer: Tensor) -> Tensor:
            return model(answer).argmax(dim=1) == target

        return self.search(start, x, constraints, objective, reached)
