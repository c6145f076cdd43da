"""GLAM-CLUE: one latent translation per predicted class, learnt once, that makes uncertain inputs certain.

Ley, Bhatt & Weller, "Diverse, Global and Amortised Counterfactual Explanations for Uncertainty
Estimates", AAAI 2022 (arXiv:2112.02646).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trustbench.methods.counterfactual.clue import Clue
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier, ExplanationData
from trustbench.methods.counterfactual.generative import predictive_entropy

_SCORED_BATCH = 2048
"""Training rows scored per forward pass when picking the uncertain group."""


class GlamClue(Clue):
    """Learn Δ_c per predicted class c on uncertain training inputs; explain x as dec(enc(x) + Δ_ŷ).

    ``fit`` scores up to `candidates` training inputs (a seeded draw) with the fitted classifier, takes the
    `group_size` with the highest predictive entropy as the uncertain group, and for each predicted class
    learns one latent translation Δ_c by `steps` Adam steps on the mean over the class's group members of
    CLUE's loss at dec(z + Δ_c) (entropy, distance, cross-entropy to the kept class, and λ_z·‖Δ_c‖ through
    `latent_weight`). ``explain`` is then one encode, one addition and one decode for the whole batch: the
    amortisation that makes it much faster per input than CLUE's per-input search. A class with no
    uncertain training member keeps Δ = 0 (its inputs come back as their reconstructions).

    Departure: the paper learns its global map between groups of uncertain and certain points; in the
    simplest form the reference notes give, a translation z ↦ z + Δ. We learn one translation per
    predicted class on training inputs (not on the points explained), so the map is truly amortised:
    explaining new inputs costs no optimisation.
    """

    name = "glam_clue"

    def __init__(self, group_size: int = 1000, candidates: int = 10000, **clue_settings: Any) -> None:
        if group_size < 1 or candidates < group_size:
            raise ValueError(
                f"glam_clue needs 1 <= group_size <= candidates; got group_size={group_size}, "
                f"candidates={candidates}"
            )
        super().__init__(**clue_settings)
        self.group_size = group_size
        self.candidates = candidates
        self.translations: Tensor | None = None

    def fit(self, data: ExplanationData) -> GlamClue:
        super().fit(data)
        model = data.module.backbone.eval()
        x, predicted = self.uncertain_group(model, data.x_train)
        vae = self.fitted_vae(x.device)
        with torch.no_grad():
            z0 = vae.encode(x)
        shift = torch.zeros(data.num_classes, z0.shape[1], device=z0.device, requires_grad=True)
        optimizer = torch.optim.Adam([shift], lr=self.lr)
        objective = self.objective(model, x, predicted, data.constraints, z0)
        members = torch.bincount(predicted, minlength=data.num_classes).clamp_min(1).to(z0.dtype)
        for _ in range(self.steps):
            z = z0 + shift[predicted]
            loss = (objective(z, data.constraints.project(vae.decode(z), x)) / members[predicted]).sum()
            (shift.grad,) = torch.autograd.grad(loss, shift)  # the classifier's parameters collect none
            optimizer.step()
        self.translations = shift.detach()
        return self

    def uncertain_group(self, model: Classifier, x_train: Tensor) -> tuple[Tensor, Tensor]:
        """The `group_size` most uncertain of `candidates` seeded training rows; their predicted classes."""
        drawn = torch.randperm(len(x_train), generator=self.generator())[: self.candidates]
        pool = x_train[drawn.to(x_train.device)]
        with torch.no_grad():
            logits = torch.cat([model(part) for part in pool.split(_SCORED_BATCH)])
        chosen = predictive_entropy(logits).argsort(descending=True)[: self.group_size]
        return pool[chosen], logits[chosen].argmax(dim=1)

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        if self.translations is None:
            raise RuntimeError(
                "the 'glam_clue' explainer learns its translations in fit(data); call it first"
            )
        vae = self.fitted_vae(x.device)
        with torch.no_grad():
            z = vae.encode(x) + self.translations.to(x.device)[target]
            return constraints.snap(vae.decode(z), x)
