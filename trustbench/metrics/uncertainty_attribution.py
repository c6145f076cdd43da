"""How well a pixel attribution finds the pixels that make a classifier uncertain: remove them and watch.

Perez et al., "Attribution of Predictive Uncertainties in Classification Models", UAI 2022 (the metrics
of their reference code, ``metrics.py``): the pixels an attribution ranks highest are replaced by a
blurred copy of the image, a growing share at a time, and the model's entropy and accuracy are followed.

- EIC (entropy): the mean predictive entropy over the removal curve, lower is better;
- AIC (accuracy): the mean accuracy over the same curve, higher is better;
- URC (uncertainty reduction): the mean over the curve of each image's relative entropy reduction
  (H(x) − H(x_f)) / H(x), averaged over images, higher is better.

"Mean over the curve" is the trapezoid area over the removed share divided by the largest share, so the
three stay in the units of their quantity. Departure: the reference code removes pixels one at a time up
to a fixed count; here the shares are a grid (``fractions``), the same for every method compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.methods.counterfactual.generative import predictive_entropy


@dataclass(frozen=True)
class RemovalCurves:
    """Mean entropy, accuracy and relative entropy reduction at each removed share (each (F,))."""

    fractions: Tensor
    entropy: Tensor
    accuracy: Tensor
    reduction: Tensor

    def summary(self) -> dict[str, float]:
        """EIC, AIC and URC (module docstring) as plain floats."""
        curves = {"eic": self.entropy, "aic": self.accuracy, "urc": self.reduction}
        return {name: _curve_mean(self.fractions, values) for name, values in curves.items()}


def gaussian_blur(x: Tensor, sigma: float = 2.0) -> Tensor:
    """Images (N, C, H, W) blurred channel by channel with a Gaussian of `sigma` pixels (reflected edges)."""
    radius = max(1, int(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def removal_curves(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    attribution: Tensor,
    fill: Tensor,
    fractions: Tensor,
) -> RemovalCurves:
    """Replace each image's top-`fraction` pixels by `attribution` (ties by index) with `fill`, per fraction.

    `x`, `attribution` and `fill` are (N, *shape); `y` (N,) the true labels; a pixel is one element.
    """
    if attribution.shape != x.shape or fill.shape != x.shape:
        raise ValueError(
            f"attribution {tuple(attribution.shape)} and fill {tuple(fill.shape)} must be shaped like the "
            f"images {tuple(x.shape)}"
        )
    if fractions.ndim != 1 or bool((fractions < 0).any() | (fractions > 1).any()):
        raise ValueError("fractions must be a 1-D tensor of shares in [0, 1]")
    flat, filled = x.flatten(1), fill.flatten(1)
    order = attribution.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1]).expand_as(order))
    entropies, accuracies = [], []
    with torch.no_grad():
        for fraction in fractions.tolist():
            removed = rank < round(fraction * flat.shape[1])
            logits = model(torch.where(removed, filled, flat).view_as(x))
            entropies.append(predictive_entropy(logits))
            accuracies.append((logits.argmax(dim=1) == y).to(torch.float64))
    entropy = torch.stack(entropies)  # (F, N)
    start = entropy[0].clamp_min(1e-12)
    return RemovalCurves(
        fractions.to(torch.float64),
        entropy.mean(dim=1).to(torch.float64),
        torch.stack(accuracies).mean(dim=1),
        ((start - entropy) / start).mean(dim=1).to(torch.float64),
    )


def _curve_mean(fractions: Tensor, values: Tensor) -> float:
    span = float(fractions[-1] - fractions[0])
    return float(torch.trapezoid(values, fractions) / span) if span > 0 else float(values.mean())
