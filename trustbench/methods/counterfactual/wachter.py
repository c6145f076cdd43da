"""Wachter et al.'s counterfactual: the closest input, in MAD-weighted L1, that the classifier puts in the
target class, found by gradient descent with a decreasing weight on the distance."""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier, Explainer, ExplanationData
from trustbench.methods.counterfactual.search import (
    MadWeights,
    ProjectedAdam,
    confidence_margin,
    margin_hinge,
    snapped_forward,
    target_margin,
    weighted_l1,
)


class Wachter(Explainer):
    """Wachter, Mittelstadt & Russell, "Counterfactual explanations without opening the black box",
    Harvard JOLT 2017.

    Minimises, for each input x and its target class t,

        hinge(x') + λ · Σ_j |x'_j − x_j| / MAD_j,    hinge(x') = max(0, m − (z_t(x') − max_{j≠t} z_j(x')))

    by Adam from x' = x, projecting onto the constraints after every step. The paper's squared error on the
    target probability is replaced by a hinge on the logit margin (DiCE's yloss; CARLA offers MSE or BCE
    on the probability): it keeps a gradient where the probability saturates and vanishes once the target
    is reached, leaving the distance to settle the point. m = log(c / (1 − c)) with c =
    `target_confidence`; for two classes the target then has probability ≥ c (c = 0.5: the boundary).

    The classifier always sees x' with its one-hot groups snapped, its gradient passed straight through to
    the relaxed x', so the search cannot rely on half-chosen categories that the snapped answer will not
    have (CARLA rounds categorical columns before the classifier too, but with no gradient through them).

    λ schedule (the paper's "increase the weight on the prediction until the target is reached"): every
    input starts at λ = `lambda_init`; the search runs in `rounds` rounds of `steps_per_round` steps, and
    after each round the inputs that have no valid counterfactual yet have their own λ multiplied by
    `lambda_decay`, while the others are done and leave the batch. A candidate counts as valid when its
    snapped version (one-hot groups rounded, as returned) has margin ≥ m; of an input's valid candidates
    the one with the lowest MAD-weighted L1 cost is returned. An input never made valid gets its final
    iterate, snapped.
    """

    name = "wachter"

    def __init__(
        self,
        lr: float = 0.01,
        steps_per_round: int = 100,
        rounds: int = 5,
        lambda_init: float = 1.0,
        lambda_decay: float = 0.1,
        target_confidence: float = 0.5,
    ) -> None:
        if steps_per_round < 1 or rounds < 1:
            raise ValueError(
                f"steps_per_round and rounds must be at least 1, got {steps_per_round} and {rounds}"
            )
        if lambda_init <= 0 or not 0 < lambda_decay < 1:
            raise ValueError(
                f"need lambda_init > 0 and 0 < lambda_decay < 1 (λ shrinks each round), got "
                f"lambda_init={lambda_init}, lambda_decay={lambda_decay}"
            )
        self.lr = lr
        self.steps_per_round = steps_per_round
        self.rounds = rounds
        self.lambda_init = lambda_init
        self.lambda_decay = lambda_decay
        self.margin = confidence_margin(target_confidence)
        self.mad = MadWeights()

    def fit(self, data: ExplanationData) -> Wachter:
        self.mad.fit(data)
        return self

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        weights = self.mad.like(x, self.name)
        search = ProjectedAdam(x, x, constraints, self.lr)
        rows = torch.arange(len(x), device=x.device)  # the inputs still searching, in `search`'s order
        targets = target
        lam = torch.full((len(x),), self.lambda_init, dtype=x.dtype, device=x.device)
        best = x.clone()
        best_cost = torch.full_like(lam, float("inf"))
        for _ in range(self.rounds):
            for _ in range(self.steps_per_round):
                snapped, logits = snapped_forward(model, search.candidate, search.original, constraints)
                with torch.no_grad():
                    cost = weighted_l1(snapped, search.original, weights)
                    better = (target_margin(logits, targets) >= self.margin) & (cost < best_cost[rows])
                    best[rows[better]] = snapped[better]
                    best_cost[rows[better]] = cost[better]
                distance = weighted_l1(search.candidate, search.original, weights)
                loss = margin_hinge(logits, targets, self.margin) + lam * distance
                search.step(loss.sum())
            searching = torch.isinf(best_cost[rows])
            rows, targets, lam = rows[searching], targets[searching], lam[searching] * self.lambda_decay
            search.keep(searching)
            if len(rows) == 0:
                break
        best[rows] = search.candidate.detach()
        return constraints.snap(best, x)
