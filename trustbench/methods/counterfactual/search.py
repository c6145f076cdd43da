"""What the counterfactual searches share: MAD distance weights, the target-class margin, projected Adam.

Every piece works on a whole batch at once and keeps inputs apart: a loss is a sum of per-input terms and
Adam updates each element from its own gradient, so explaining N inputs together gives the same answer as
explaining them one at a time (up to floating-point reassociation), only faster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from trustbench.data.loaders import named_generator
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Explainer, ExplanationData

MIN_MAD = 1e-6
"""Below this median absolute deviation an element counts as constant in the training data."""


def inverse_mad(mad: Tensor) -> Tensor:
    """Per-element float32 distance weights 1 / MAD, for `mad` the training rows' median absolute deviation
    (:func:`trustbench.metrics.counterfactual.median_absolute_deviation`, the scale ``cf/mad_l1`` uses).

    MAD_j = median_i |x_ij − median_i x_ij|, the scale Wachter, Mittelstadt & Russell (2017) divide each
    feature's change by. An element whose MAD is zero (a one-hot column, a mostly-zero feature such as
    Adult's capital gain, a border pixel) gets weight 1, as DiCE does, instead of an infinite weight that
    would forbid changing it.
    """
    return torch.where(mad > MIN_MAD, 1.0 / mad.clamp_min(MIN_MAD), torch.ones_like(mad)).float()


def weighted_l1(candidate: Tensor, original: Tensor, weights: Tensor) -> Tensor:
    """Σ_j w_j |candidate_j − original_j| over the element dims (those of `weights`), one value per row."""
    return ((candidate - original).abs() * weights).flatten(-weights.ndim).sum(dim=-1)


def target_margin(logits: Tensor, target: Tensor) -> Tensor:
    """z_target − max_{j ≠ target} z_j for logits (..., K) and targets (...): > 0 iff argmax is the target.

    For two classes this is the log-odds of the target class, so a margin of log(c / (1 − c)) means the
    target's probability is at least c.
    """
    index = target.unsqueeze(-1)
    others = logits.scatter(-1, index, float("-inf"))
    return logits.gather(-1, index).squeeze(-1) - others.max(dim=-1).values


def margin_hinge(logits: Tensor, target: Tensor, margin: float) -> Tensor:
    """max(0, margin − target_margin): zero once the target leads every other class by `margin` logits.

    DiCE's hinge yloss (Mothilal et al. 2020) with margin 1, generalised to K classes as in Carlini &
    Wagner's attack loss.
    """
    return torch.relu(margin - target_margin(logits, target))


def confidence_margin(confidence: float) -> float:
    """The logit margin log(c / (1 − c)) at which a two-class target reaches probability `confidence`."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"target_confidence must be strictly between 0 and 1, got {confidence}")
    return math.log(confidence / (1.0 - confidence))


def snapped_forward(
    model: Callable[[Tensor], Tensor], candidate: Tensor, original: Tensor, constraints: Constraints
) -> tuple[Tensor, Tensor]:
    """The snapped candidate and the logits there, with gradients passed straight through to `candidate`.

    A relaxed search scored on its relaxed points can end on half-chosen categories (a one-hot group of
    zeros, two categories at 0.5) that the snapped answer loses; scored here, it only counts what it returns.
    """
    snapped = constraints.snap(candidate.detach(), original)
    return snapped, model(candidate + (snapped - candidate).detach())


def group_matrix(groups: Sequence[Sequence[int]], size: int) -> Tensor:
    """A (len(groups), size) 0/1 matrix whose row g marks the flat columns of group g."""
    matrix = torch.zeros(len(groups), size)
    for row, columns in enumerate(groups):
        matrix[row, list(columns)] = 1.0
    return matrix


class ProjectedAdam:
    """Adam (Kingma & Ba 2015, default betas) on a batch of candidates, each step followed by the projection.

    Gradients are taken with respect to the candidates only (the classifier's parameters collect none).
    Give `step` a loss that sums per-input terms, never a mean over the batch, so each input's gradient is
    the one it would have alone; `keep` then drops inputs whose search is over without changing the others'
    trajectories, so a batch costs only the steps its inputs still need.
    """

    BETAS = (0.9, 0.999)
    EPS = 1e-8

    def __init__(self, start: Tensor, original: Tensor, constraints: Constraints, lr: float) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.lr = lr
        self.original = original
        self.constraints = constraints
        self.candidate = constraints.project(start.detach(), original).requires_grad_(True)
        self.first_moment = torch.zeros_like(self.candidate)
        self.second_moment = torch.zeros_like(self.candidate)
        self.steps = 0

    def step(self, loss: Tensor) -> None:
        (grad,) = torch.autograd.grad(loss, self.candidate)
        beta1, beta2 = self.BETAS
        self.steps += 1
        with torch.no_grad():
            self.first_moment.lerp_(grad, 1 - beta1)
            self.second_moment.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            scale = (self.second_moment / (1 - beta2**self.steps)).sqrt_().add_(self.EPS)
            moved = self.candidate - self.lr / (1 - beta1**self.steps) * self.first_moment / scale
            self.candidate = self.constraints.project(moved, self.original).requires_grad_(True)

    def keep(self, rows: Tensor) -> None:
        """Continue with the inputs selected by `rows` (a boolean mask or indices) only."""
        self.original = self.original[rows]
        self.candidate = self.candidate.detach()[rows].requires_grad_(True)
        self.first_moment = self.first_moment[rows]
        self.second_moment = self.second_moment[rows]


class MadWeights:
    """The 1/MAD distance weights an explainer learns from the training data in its `fit`."""

    def __init__(self) -> None:
        self._weights: Tensor | None = None

    def fit(self, data: ExplanationData) -> None:
        self._weights = inverse_mad(data.median_absolute_deviation())

    def like(self, x: Tensor, explainer: str) -> Tensor:
        """The weights on `x`'s device and dtype; a clear error when `fit` was never called."""
        if self._weights is None:
            raise RuntimeError(
                f"counterfactual explainer {explainer!r} weighs distances by the training data's MAD: "
                "call fit(ExplanationData) before explain"
            )
        if self._weights.shape != x.shape[1:]:
            raise ValueError(
                f"{explainer!r} was fitted on inputs of shape {tuple(self._weights.shape)} but asked to "
                f"explain inputs of shape {tuple(x.shape[1:])}; fit it on the same dataset"
            )
        return self._weights.to(x)


class SeededExplainer(Explainer):
    """An explainer that draws random numbers: from the run's seed once fitted, else the constructor's."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data: ExplanationData) -> SeededExplainer:
        self.seed = data.seed
        return self

    def generator(self) -> torch.Generator:
        """A fresh CPU generator for this explainer and seed: every `explain` call draws the same stream."""
        return named_generator(self.seed, self.name)
