"""Diffeomorphic counterfactuals: the latent-gradient search in the exact coordinates of a normalising flow.

Dombrowski, Gerken & Kessel, "Diffeomorphic Explanations with Normalizing Flows" (ICML 2021 workshop
INNF+), and with Müller, "Diffeomorphic Counterfactuals with Generative Models" (arXiv:2206.05075, TPAMI
2023); reference code ``annahdo/counterfactuals`` (``adv.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from trustbench.methods.counterfactual.explainer import ExplanationData
from trustbench.methods.counterfactual.flow import FlowConfig, PixelFlow, trained_flow
from trustbench.methods.counterfactual.latent_gradient import LatentGradient
from trustbench.methods.counterfactual.search import SeededExplainer


class Diffeomorphic(LatentGradient):
    """Adam on z = f(x) of a RealNVP flow (:mod:`~trustbench.methods.counterfactual.flow`) to raise
    log p(target | f⁻¹(z)); each input keeps the first f⁻¹(z) whose target probability reaches `confidence`.

    Because f is a diffeomorphism, the search starts at x itself (f⁻¹(f(x)) = x) and a step in z is a step
    in x under the metric J Jᵀ that the flow pulls back (J = ∂f⁻¹/∂z), which moves the image along the
    learnt data manifold rather than into adversarial noise. `generative` holds the flow's
    :class:`~trustbench.methods.counterfactual.flow.FlowConfig` settings (trained once per config, cached).

    Departures from the reference code: it stops at p_target ≥ 0.99 after up to 2000 Adam steps (lr 0.05);
    here `confidence` defaults to 0.9 and `steps` to 300, as :class:`LatentGradient` does, so the two
    explainers differ only in their coordinates and one table compares them; every candidate is also
    clipped to the dataset's pixel range as the reference clips to [0, 1]. The flow is a small,
    single-scale RealNVP trained for a few CPU epochs, where the paper uses multi-scale RealNVP or Glow.
    """

    name = "diffeomorphic"

    def __init__(
        self,
        confidence: float = 0.9,
        steps: int = 300,
        lr: float = 0.05,
        generative: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(confidence=confidence, steps=steps, lr=lr)
        self.flow_config = FlowConfig.from_mapping(generative)
        self.flow: PixelFlow | None = None

    def fit(self, data: ExplanationData) -> Diffeomorphic:
        # the VAE that LatentExplainer.fit trains is never used here: only the seed and the flow are needed
        SeededExplainer.fit(self, data)
        self.flow = trained_flow(data, self.flow_config)
        return self

    def latent_model(self, device: torch.device) -> nn.Module:
        if self.flow is None:
            raise RuntimeError(
                "the 'diffeomorphic' explainer searches a flow's coordinates; call fit(data) first"
            )
        return self.flow.to(device)
