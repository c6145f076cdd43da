"""DeDUCE: counterfactuals that change one element per step, guided by a class-conditional feature density.

Source: Höltgen, Schut, Brauner & Gal, "DeDUCE: Generating Counterfactual Explanations Efficiently",
NeurIPS 2021 workshop XAI4Debugging (arXiv:2111.15639). Details follow the reference implementation,
github.com/benedikthoeltgen/DeDUCE (`generate_CE_batch` in CE/DeDUCE_utils.py, defaults of run_DeDUCE.py):

- `fit` fits Gaussian discriminant analysis on the penultimate features of the training split, exactly as
  DDU does (one Gaussian per class, one shared jitter), with DDU's own :func:`class_gaussians`;
- each step takes the gradient, with respect to the input, of

      −log N(z; μ_t, Σ_t) / |log N(z; μ_t, Σ_t)|  +  c · CE(f(x), t) / CE(f(x), t)

  where z are the features of x and t its target; each term is divided by its own (detached) value so
  that both pull with the same strength, and c = `classifier_weight` = 1 as in the reference. The step's
  direction is that gradient plus `momentum` (0.6) times the previous direction;
- the element with the largest direction magnitude that may still move against it is changed;
- an input stops as soon as the classifier gives its target a probability of at least `confidence` (0.5),
  and after at most `max_steps` (700) changes. Inputs stop individually; finished ones leave the batch.

One deliberate change from the reference: it moves the chosen pixel by δ = 0.2 and lets a pixel change up
to 5 times; here the chosen element jumps straight to the end of its allowed range (for pixels in [0, 1],
δ · 5 = 1 is the whole range) and never changes again. Every step therefore changes exactly one new element,
so a counterfactual's L0 distance equals its number of steps. The allowed range is the one
:meth:`Constraints.project` enforces, so immutable elements never move and increase-only ones only grow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import Classifier, Explainer, ExplanationData
from trustbench.methods.uncertainty.ddu import class_gaussians, gaussian_log_densities

_TINY = 1e-12  # keeps the self-normalised loss terms finite when a term is (numerically) zero


@dataclass(frozen=True)
class DeduceSearch:
    """The outcome of one DeDUCE search over a batch.

    `counterfactuals` is (N, *shape); `steps` (N,) counts the elements each input changed, which is also
    its L0 distance; `reached` (N,) marks inputs whose target probability reached the confidence level.
    """

    counterfactuals: Tensor
    steps: Tensor
    reached: Tensor


class DeDUCE(Explainer):
    """Greedy one-element-at-a-time search along the gradient of the target's feature density (module doc)."""

    name = "deduce"

    def __init__(
        self,
        confidence: float = 0.5,
        max_steps: int = 700,
        momentum: float = 0.6,
        classifier_weight: float = 1.0,
        feature_batch_size: int = 512,
    ) -> None:
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if classifier_weight < 0:
            raise ValueError(f"classifier_weight must be >= 0, got {classifier_weight}")
        self.confidence = confidence
        self.max_steps = max_steps
        self.momentum = momentum
        self.classifier_weight = classifier_weight
        self.feature_batch_size = feature_batch_size
        self._backbone: Backbone | None = None
        self._means: Tensor | None = None
        self._scale_tril: Tensor | None = None

    def fit(self, data: ExplanationData) -> DeDUCE:
        """Fit one Gaussian per class on the backbone's penultimate features of the training split."""
        backbone = data.module.backbone
        if backbone.feature_dim is None:
            raise ValueError(
                f"deduce fits class Gaussians on penultimate features, but backbone "
                f"{type(backbone).__name__} has none (feature_dim is None); choose a backbone with a feature "
                "layer such as lenet or mlp."
            )
        features = data.train_features(self.feature_batch_size).features
        device = next(backbone.parameters()).device
        means, scale_tril, _ = class_gaussians(features.to(device), data.y_train.to(device), data.num_classes)
        self._backbone = backbone
        self._means = means
        self._scale_tril = scale_tril
        return self

    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        return self.search(model, x, target, constraints).counterfactuals

    def search(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> DeduceSearch:
        """Run DeDUCE on every row of `x` and report, besides the counterfactuals, steps and success."""
        if self._backbone is None:
            raise RuntimeError("deduce needs the class Gaussians: call fit(ExplanationData) before explain")
        original = x.detach()
        rows = len(original)
        # The ends of each element's allowed range, as Constraints.project defines it.
        low = constraints.project(torch.full_like(original, -math.inf), original).flatten(1)
        high = constraints.project(torch.full_like(original, math.inf), original).flatten(1)
        current = original.flatten(1).clone()
        untouched = torch.ones_like(current, dtype=torch.bool)
        direction = torch.zeros_like(current)
        steps = torch.zeros(rows, dtype=torch.long, device=original.device)
        reached = torch.zeros(rows, dtype=torch.bool, device=original.device)
        searching = torch.arange(rows, device=original.device)
        for step in range(self.max_steps + 1):
            if len(searching) == 0:
                break
            probability, gradient = self._probability_and_gradient(
                model, current[searching].view(-1, *original.shape[1:]), target[searching]
            )
            confident = probability >= self.confidence
            reached[searching[confident]] = True
            moving = searching[~confident]
            if step == self.max_steps or len(moving) == 0:
                break
            direction[moving] = gradient[~confident].flatten(1) + self.momentum * direction[moving]
            moved = self._change_one_element(current, direction, untouched, low, high, moving)
            steps[moving[moved]] += 1
            searching = moving[moved]
        return DeduceSearch(
            counterfactuals=constraints.snap(current.view_as(original), original),
            steps=steps,
            reached=reached,
        )

    def _probability_and_gradient(
        self, model: Classifier, x: Tensor, target: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The target's probability under `model` and the gradient of DeDUCE's loss, for each row of `x`."""
        backbone = self._backbone
        assert backbone is not None
        was_training = backbone.training
        backbone.eval()
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            features = backbone.features(x)
            logits = backbone.head(features) if model is backbone else model(x)
            log_density = gaussian_log_densities(features, self._means, self._scale_tril)
            density_loss = -log_density.gather(1, target.unsqueeze(1)).squeeze(1)
            class_loss = F.cross_entropy(logits, target, reduction="none")
            loss = density_loss / density_loss.detach().abs().clamp_min(_TINY) + (
                self.classifier_weight * class_loss / class_loss.detach().clamp_min(_TINY)
            )
            (gradient,) = torch.autograd.grad(loss.sum(), x)
        backbone.train(was_training)
        probability = logits.detach().softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        return probability, gradient

    @staticmethod
    def _change_one_element(
        current: Tensor, direction: Tensor, untouched: Tensor, low: Tensor, high: Tensor, rows: Tensor
    ) -> Tensor:
        """Move, in each of `rows`, the untouched element with the largest |direction| that can still move
        against its direction to the end of its range; returns which rows had such an element."""
        values, step, fresh = current[rows], direction[rows], untouched[rows]
        can_rise = (step < 0) & (values < high[rows])
        can_fall = (step > 0) & (values > low[rows])
        score = torch.where(fresh & (can_rise | can_fall), step.abs(), torch.full_like(step, -1.0))
        best_score, element = score.max(dim=1)
        moved = best_score >= 0
        rows, element = rows[moved], element[moved]
        rises = step[moved].gather(1, element.unsqueeze(1)).squeeze(1) < 0
        current[rows, element] = torch.where(rises, high[rows, element], low[rows, element])
        untouched[rows, element] = False
        return moved
