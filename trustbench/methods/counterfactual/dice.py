"""DiCE: k counterfactuals per input, valid, close and unlike one another, from one gradient loss."""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier, ExplanationData
from trustbench.methods.counterfactual.search import (
    MadWeights,
    ProjectedAdam,
    SeededExplainer,
    group_matrix,
    margin_hinge,
    snapped_forward,
    weighted_l1,
)

KERNEL_JITTER = 1e-4
"""Added to the DPP kernel's diagonal (as DiCE does) so its determinant stays away from zero."""


def dpp_diversity(candidates: Tensor, weights: Tensor) -> Tensor:
    """det K for each input's candidates (N, k, *shape), K_ij = 1 / (1 + Σ_d w_d |c_id − c_jd|): (N,).

    The determinant is 0 when two candidates coincide and approaches 1 as they move far apart.
    """
    scaled = (candidates * weights).flatten(2)
    kernel = 1.0 / (1.0 + torch.cdist(scaled, scaled, p=1))
    jitter = KERNEL_JITTER * torch.eye(candidates.shape[1], dtype=kernel.dtype, device=kernel.device)
    return torch.linalg.det(kernel + jitter)


class DiCE(SeededExplainer):
    """Mothilal, Sharma & Tan, "Explaining machine learning classifiers through diverse counterfactual
    explanations", FAT* 2020 (gradient DiCE).

    For each input x, k candidates c_1..c_k minimise

        1/k Σ_i hinge(c_i) + proximity_weight · 1/(kD) Σ_i Σ_d |c_id − x_d| / MAD_d
        − diversity_weight · det K + categorical_penalty · Σ_i Σ_groups (Σ_{d ∈ group} c_id − 1)²

    with hinge(c) = max(0, m − (z_t(c) − max_{j≠t} z_j(c))) (DiCE's hinge yloss, m = `hinge_margin` = 1 as
    in DiCE: target probability ≥ 0.73 for two classes) and K the DPP kernel of :func:`dpp_diversity`.
    As in :class:`~trustbench.methods.counterfactual.wachter.Wachter`, the classifier sees the candidates
    with one-hot groups snapped (straight-through gradient); the categorical penalty still keeps the relaxed
    groups near the simplex. Scored on relaxed candidates instead, as DiCE does, 3% of Adult candidates
    were valid only until snapped.
    Defaults are DiCE's (proximity 0.5, diversity 1.0, categorical 0.1, lr 0.05, 4 counterfactuals).
    Candidates start at x plus uniform noise in ±`init_scale` drawn from the explainer's seed (distinct
    starts: identical candidates get no diversity gradient), are moved by Adam for `steps` steps with the
    constraints projected after each, and the last iterate is returned snapped, (N, k, *shape). DiCE's
    convergence test and post-hoc sparsity step are left out: every input takes the same `steps`.
    """

    name = "dice"
    returns_sets = True

    def __init__(
        self,
        k: int = 4,
        lr: float = 0.05,
        steps: int = 500,
        proximity_weight: float = 0.5,
        diversity_weight: float = 1.0,
        categorical_penalty: float = 0.1,
        hinge_margin: float = 1.0,
        init_scale: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if k < 1 or steps < 1:
            raise ValueError(f"k and steps must be at least 1, got k={k}, steps={steps}")
        self.k = k
        self.lr = lr
        self.steps = steps
        self.proximity_weight = proximity_weight
        self.diversity_weight = diversity_weight
        self.categorical_penalty = categorical_penalty
        self.hinge_margin = hinge_margin
        self.init_scale = init_scale
        self.mad = MadWeights()

    def fit(self, data: ExplanationData) -> DiCE:
        super().fit(data)
        self.mad.fit(data)
        return self

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        weights = self.mad.like(x, self.name)
        n, k, size = len(x), self.k, weights.numel()
        original = x.unsqueeze(1)
        noise = torch.rand((n, k, *x.shape[1:]), generator=self.generator()).to(x)
        search = ProjectedAdam(original + self.init_scale * (2 * noise - 1), x, constraints, self.lr)
        targets = target.unsqueeze(1).expand(n, k)
        groups = group_matrix(constraints.onehot_groups, size).to(x)

        def per_candidate(candidates: Tensor) -> Tensor:
            return model(candidates.flatten(0, 1)).unflatten(0, (n, k))

        for _ in range(self.steps):
            candidates = search.candidate
            _, logits = snapped_forward(per_candidate, candidates, x, constraints)
            yloss = margin_hinge(logits, targets, self.hinge_margin).mean(dim=1)
            proximity = weighted_l1(candidates, original, weights).mean(dim=1) / size
            group_sums = candidates.flatten(2) @ groups.T
            categorical = (group_sums - 1).square().sum(dim=(1, 2))
            loss = (
                yloss
                + self.proximity_weight * proximity
                - self.diversity_weight * dpp_diversity(candidates, weights)
                + self.categorical_penalty * categorical
            )
            search.step(loss.sum())
        return constraints.snap(search.candidate.detach(), x)
