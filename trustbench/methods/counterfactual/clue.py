"""CLUE, Δ-CLUE and ∇-CLUE: nearby inputs, decoded from a VAE, on which the classifier is more certain.

CLUE: Antorán, Bhatt, Adel, Weller & Hernández-Lobato, "Getting a CLUE: A Method for Explaining
Uncertainty Estimates", ICLR 2021. Δ-CLUE: Ley, Bhatt & Weller, "δ-CLUE: Diverse Sets of Explanations
for Uncertainty Estimates" (ICLR 2021 workshop) and "Diverse, Global and Amortised Counterfactual
Explanations for Uncertainty Estimates", AAAI 2022, which also introduces ∇-CLUE (and GLAM-CLUE, in
:mod:`~trustbench.methods.counterfactual.glam_clue`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.data.loaders import named_generator
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier
from trustbench.methods.counterfactual.generative import (
    LatentExplainer,
    LatentObjective,
    predictive_entropy,
    range_scaled_l1,
)


class Clue(LatentExplainer):
    """Minimise H(f(dec(z))) + λ_x·d(dec(z), x) + λ_y·CE(f(dec(z)), target) + λ_z·‖z − z0‖₂ from z0 = enc(x).

    H is the predictive entropy (nats). d is the L1 distance averaged over input elements in units of
    their range (`distance_weight` λ_x). The paper's prediction-space distance d_y is, for a classifier,
    the cross-entropy to the class predicted for x, which the suite passes as `target`
    (`prediction_weight` λ_y). The explainer contract asks CLUE to keep that class: with λ_y = 0
    (entropy only) it kept the class of just 44% of the 50 most uncertain MNIST test digits in our tests,
    against 100% at the default λ_y = 1, with lower final entropy too. `latent_weight` λ_z (default 0)
    additionally ties z to z0. CLUE has no stopping rule: all `steps` Adam steps are taken.
    """

    name = "clue"
    explains_uncertainty = True

    def __init__(
        self,
        distance_weight: float = 1.0,
        prediction_weight: float = 1.0,
        latent_weight: float = 0.0,
        steps: int = 200,
        lr: float = 0.05,
        generative: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(steps=steps, lr=lr, generative=generative)
        self.distance_weight = distance_weight
        self.prediction_weight = prediction_weight
        self.latent_weight = latent_weight

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        vae = self.fitted_vae(x.device)
        with torch.no_grad():
            z0 = vae.encode(x)
        return self.search(z0, x, constraints, self.objective(model, x, target, constraints, z0))

    def objective(
        self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints, z0: Tensor
    ) -> LatentObjective:
        """CLUE's loss for inputs `x` (B, *shape) whose codes start at `z0` (B, L)."""

        def loss(z: Tensor, candidate: Tensor) -> Tensor:
            logits = model(candidate)
            total = predictive_entropy(logits) + self.distance_weight * range_scaled_l1(
                candidate, x, constraints
            )
            if self.prediction_weight:
                total = total + self.prediction_weight * F.cross_entropy(logits, target, reduction="none")
            if self.latent_weight:
                total = total + self.latent_weight * (z - z0).norm(dim=1)
            return total

        return loss


class DeltaClue(Clue):
    """k CLUEs per input, each searched from a random start within the latent δ-ball around z0 = enc(x).

    Each of the `k` searches starts at a point drawn uniformly from the ball ‖z − z0‖ ≤ `radius` (δ) and
    is projected back onto that ball after every step, minimising CLUE's loss; different starts settle in
    different minima, which is where the diversity comes from. Returns (N, k, *shape). Starts are drawn
    from a generator seeded by the fit data's seed, so the same batch gets the same CLUEs.
    """

    name = "delta_clue"
    returns_sets = True
    # the random stream the starts are drawn from: ∇-CLUE shares Δ-CLUE's, so both start from the same codes
    start_stream: ClassVar[str] = "delta_clue"

    def __init__(self, k: int = 5, radius: float = 1.0, **clue_settings: Any) -> None:
        if k < 1 or radius <= 0:
            raise ValueError(f"delta_clue needs k >= 1 and radius > 0; got k={k}, radius={radius}")
        super().__init__(**clue_settings)
        self.k = k
        self.radius = radius

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        vae = self.fitted_vae(x.device)
        with torch.no_grad():
            centres = vae.encode(x).repeat_interleave(self.k, dim=0)
        originals = x.repeat_interleave(self.k, dim=0)
        targets = target.repeat_interleave(self.k, dim=0)
        starts = centres + self._uniform_ball(centres.shape).to(centres.device)

        def keep_within(z: Tensor) -> Tensor:
            offset = z - centres
            shrink = (self.radius / offset.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
            return centres + offset * shrink

        objective = self.set_objective(model, originals, targets, constraints, centres)
        found = self.search(starts, originals, constraints, objective, keep_within=keep_within)
        return found.view(len(x), self.k, *x.shape[1:])

    def set_objective(
        self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints, z0: Tensor
    ) -> LatentObjective:
        """The loss of the k searches of every input, rows ordered input by input: CLUE's for Δ-CLUE."""
        return self.objective(model, x, target, constraints, z0)

    def _uniform_ball(self, shape: torch.Size) -> Tensor:
        """Points drawn uniformly from the `radius`-ball in `shape[1]` dimensions, one per row."""
        generator = named_generator(self.seed, self.start_stream)
        direction = torch.randn(shape, generator=generator)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        scale = torch.rand(shape[0], 1, generator=generator) ** (1.0 / shape[1])
        return self.radius * scale * direction


class NablaClue(DeltaClue):
    """Δ-CLUE's k searches in the δ-ball plus a diversity term, so the members of a set spread apart.

    Each search minimises CLUE's loss − `diversity_weight` · (mean latent L2 distance from its code to the
    other k − 1 codes of its input's set), so a set of CLUEs covers distinct ways to reduce the
    uncertainty instead of several searches settling in one minimum. Starts are Δ-CLUE's (the same random
    stream), so with `diversity_weight` 0 it returns exactly Δ-CLUE's sets and the diversity term is the
    only difference. Departure: the AAAI paper's ∇-CLUE diversity is stated for distances between the
    CLUEs; no reference code was found, so the distance is taken in latent space (cheap, differentiable,
    and bounded by the δ-ball so it cannot run away), and the set is measured by the suite in input space
    (``cf/diversity``).
    """

    name = "nabla_clue"

    def __init__(self, diversity_weight: float = 0.3, **delta_clue_settings: Any) -> None:
        if diversity_weight < 0:
            raise ValueError(f"nabla_clue needs diversity_weight >= 0; got {diversity_weight}")
        super().__init__(**delta_clue_settings)
        self.diversity_weight = diversity_weight

    def set_objective(
        self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints, z0: Tensor
    ) -> LatentObjective:
        clue_loss = self.objective(model, x, target, constraints, z0)
        k = self.k

        def loss(z: Tensor, candidate: Tensor) -> Tensor:
            total = clue_loss(z, candidate)
            if k < 2 or not self.diversity_weight:
                return total
            sets = z.view(-1, k, z.shape[1])
            # sqrt of a clamped square: the distance of a code to itself has no NaN gradient
            gaps = (sets[:, :, None] - sets[:, None]).square().sum(dim=-1).clamp_min(1e-12).sqrt()
            spread = gaps.sum(dim=2).reshape(-1) / (k - 1)  # the self-distance (≈ 1e-6) adds nothing
            return total - self.diversity_weight * spread

        return loss
