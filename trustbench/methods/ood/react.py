"""ReAct (Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified Activations", NeurIPS 2021).

Penultimate activations are clipped from above at c, the `percentile`-th percentile of the activation
values of the ID **validation** split (every unit of every validation example pooled), the logits are
recomputed with the head, and the energy −logsumexp(head(min(f, c))) is the score: higher = more OOD.
The validation split is what both references use: OpenOOD v1.5's `ReactPostprocessor.setup` reads
`id_loader_dict['val']`, and the paper's `compute_threshold.py` reads ImageNet's validation loader
(stopping after about 2,000 images; we take the whole validation split, as OpenOOD). `fit_split = "val"`
tells the runner to pass validation features to ``fit``. Default p = 90 (the paper's choice and OpenOOD
v1.5's); the grid is OpenOOD v1.5's `percentile_list`.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from trustbench.methods.ood.detector import Features, HparamGrid
from trustbench.methods.ood.energy import ShapedFeatureEnergy


class ReAct(ShapedFeatureEnergy):
    """Energy after clipping activations at the ID validation split's `percentile`-th percentile."""

    name = "react"
    fit_split = "val"

    def __init__(self, percentile: float = 90.0) -> None:
        super().__init__()
        if not 0 <= percentile <= 100:
            raise ValueError(f"react: percentile must be in [0, 100], got {percentile}.")
        self.percentile = percentile
        self._threshold: float | None = None

    def fit(self, train: Features, head: nn.Linear | None = None) -> ReAct:
        """Take c from `train`, which the runner fills with the ID validation split (`fit_split`)."""
        super().fit(train, head)
        # numpy's linear-interpolation percentile, as OpenOOD; torch.quantile caps its input size.
        activations = self._require_features(train).detach().cpu().numpy().ravel()
        self._threshold = float(np.percentile(activations, self.percentile))
        return self

    def shape(self, features: Tensor) -> Tensor:
        return features.clamp(max=self._fitted(self._threshold))

    @classmethod
    def hparam_grid(cls, train: Features | None = None) -> HparamGrid:
        return {"percentile": [85, 90, 95, 99]}
