"""Counterfactuals by gradient ascent on the target class's log-probability in latent coordinates.

Dombrowski, Gerken, Müller & Kessel, "Diffeomorphic Counterfactuals with Generative Models", 2022/2023
(arXiv:2206.05075; TPAMI 2023), following their earlier "Diffeomorphic Explanations with Normalizing
Flows" (ICML 2021 workshop).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier
from trustbench.methods.counterfactual.generative import LatentExplainer


class LatentGradient(LatentExplainer):
    """Ascend log p(target | dec(z)) from z = enc(x) until the target's probability reaches `confidence`.

    The paper takes the coordinates of a normalizing flow, a diffeomorphism g: z ↦ x, so z = g⁻¹(x)
    reproduces x exactly and a step in z is a gradient step in x under the metric the flow pulls back,
    which keeps the path on the data manifold. Here the coordinates are those of the VAE decoder from
    :func:`~trustbench.methods.counterfactual.generative.trained_vae` — the paper's "approximately
    diffeomorphic" variant with a VAE/GAN — which changes two things: the search starts from the
    reconstruction dec(enc(x)), not from x itself (the counterfactual also carries the VAE's
    reconstruction error), and the decoder maps a lower-dimensional latent space onto a manifold, so
    every counterfactual lies on that learned manifold but not every input has an exact preimage. There is
    no distance term: closeness comes only from starting at enc(x) and stopping early. Steps are Adam's
    (the shared latent search), at most `steps` of size `lr`.
    """

    name = "latent_gradient"

    def __init__(
        self,
        confidence: float = 0.9,
        steps: int = 300,
        lr: float = 0.05,
        generative: Mapping[str, Any] | None = None,
    ) -> None:
        if not 0 < confidence < 1:
            raise ValueError(f"{self.name}'s confidence is a probability in (0, 1); got {confidence}")
        super().__init__(steps=steps, lr=lr, generative=generative)
        self.confidence = confidence

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        with torch.no_grad():
            start = self.latent_model(x.device).encode(x)
        rows = torch.arange(len(x), device=x.device)

        def objective(z: Tensor, candidate: Tensor) -> Tensor:
            return -model(candidate).log_softmax(dim=1)[rows, target]

        def reached(answer: Tensor) -> Tensor:
            probs = model(answer).softmax(dim=1)
            return (probs.argmax(dim=1) == target) & (probs[rows, target] >= self.confidence)

        return self.search(start, x, constraints, objective, reached)
