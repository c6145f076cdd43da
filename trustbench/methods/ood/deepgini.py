"""DeepGini (Feng, Shi, Gao, Chen, Chen & Zhao, "DeepGini: Prioritizing Massive Tests to Enhance the
Robustness of Deep Neural Networks", ISSTA 2020): the Gini impurity of the softmax output.

Convention: score = 1 − Σ_k p_k², in [0, 1 − 1/K]; higher = less certain = more OOD, as the paper ranks
tests. Nothing to fit, no hyperparameters.
"""

from __future__ import annotations

from torch import Tensor

from trustbench.methods.ood.detector import Detector, Features


class DeepGini(Detector):
    """Gini impurity of the softmax: 1 − Σ_k p_k²."""

    name = "deepgini"

    def score(self, data: Features) -> Tensor:
        return 1 - data.logits.softmax(dim=1).square().sum(dim=1)
