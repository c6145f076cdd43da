"""Metrics of attribution maps: faithfulness (deletion, insertion, model randomisation) and robustness
(max-sensitivity, local Lipschitz estimate, top-k intersection, rank correlation).

A map here is a relevance per feature, N × *feature_shape (pixels N×H×W, table columns N×D); every
function returns one value per example (N,) and the suite reports their means. Each docstring states the
convention; where Quantus (Hedström et al., JMLR 2023) has the metric, ours gives its numbers on the same
inputs and perturbations (tests/test_xai_metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

EPS = 1e-10  # Quantus' guard on the denominator of the Lipschitz ratio

Probabilities = Callable[[Tensor], Tensor]
"""Maps a batch of model inputs to class probabilities (N×K)."""


def ranks(values: Tensor) -> Tensor:
    """Ranks 1..D of each row of `values` (N×D), ties given their mean rank (as scipy.stats.rankdata)."""
    order = values.argsort(dim=1, stable=True)
    sorted_values = values.gather(1, order)
    first = torch.ones_like(sorted_values, dtype=torch.bool)
    first[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    run = first.cumsum(dim=1)  # which run of equal values each sorted position belongs to
    position = torch.arange(1, values.shape[1] + 1, dtype=torch.float64).expand_as(run)
    run_sum = torch.zeros_like(position).scatter_add_(1, run - 1, position)
    run_size = torch.zeros_like(position).scatter_add_(1, run - 1, torch.ones_like(position))
    mean_rank = (run_sum / run_size.clamp_min(1)).gather(1, run - 1)
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Spearman rank correlation between each pair of maps (flattened), ties at their mean rank; NaN for
    a constant map. Signed, in [−1, 1]; 1 means the same ordering of features."""
    ra, rb = ranks(a.flatten(1).double()), ranks(b.flatten(1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return ((ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))).float()


def topk_intersection(a: Tensor, b: Tensor, k: int) -> Tensor:
    """Share of the `k` largest features of map `a` that are also among the `k` largest of `b`, in [0, 1]
    (Ghorbani, Abid & Zou, AAAI 2019). Maps are compared as given: pass magnitudes to compare by size."""
    top_a = a.flatten(1).topk(k, dim=1).indices
    top_b = b.flatten(1).topk(k, dim=1).indices
    return (top_a[:, :, None] == top_b[:, None, :]).any(dim=2).float().mean(dim=1)


def max_sensitivity(clean: Tensor, perturbed: Tensor) -> Tensor:
    """Yeh et al. (NeurIPS 2019), as Quantus' MaxSensitivity: max over the S perturbed maps (S×N×…) of
    ‖Φ(x + δ) − Φ(x)‖_F / ‖Φ(x)‖_F. Relative, ≥ 0, lower is more robust; the perturbations δ (their
    radius) are the caller's, and count whether or not they change the prediction."""
    change = (perturbed - clean).flatten(2).norm(dim=2)
    return (change / clean.flatten(1).norm(dim=1)).amax(dim=0)


def local_lipschitz(clean: Tensor, perturbed: Tensor, x: Tensor, x_perturbed: Tensor) -> Tensor:
    """Alvarez-Melis & Jaakkola (2018), as Quantus' LocalLipschitzEstimate: the largest
    ‖Φ(x) − Φ(x′)‖₂ / (‖x − x′‖₂ + 1e-10) over the S perturbed inputs x′ (S×N×…) and their maps.
    In map units per input unit, ≥ 0, lower is more robust."""
    numerator = (perturbed - clean).flatten(2).norm(dim=2)
    denominator = (x_perturbed - x).flatten(2).norm(dim=2) + EPS
    return (numerator / denominator).amax(dim=0)


def removal_curve(
    probabilities: Probabilities,
    x: Tensor,
    relevance: Tensor,
    target: Tensor,
    baseline: Tensor,
    steps: int,
    insertion: bool = False,
) -> Tensor:
    """The probability of `target` as the most relevant features are deleted (or inserted), N×(steps+1).

    Petsiuk, Das & Saenko (BMVC 2018, RISE): deletion starts from x and sets features, most relevant
    first (signed relevance, largest first; ties in index order), to `baseline`; insertion starts from the
    baseline and restores them in the same order. A feature is one entry of the map: a pixel with all
    its channels, or a table column. `steps` equal chunks of ⌈D / steps⌉ features; column 0 is the
    unchanged input (deletion) or the baseline (insertion), the last the other end. Quantus'
    PixelFlipping returns columns 1.. of the deletion curve. RISE inserts into a blurred image; we insert
    into the same baseline deletion uses, so both curves run between the same two inputs.
    """
    n, features = len(x), relevance[0].numel()
    order = relevance.flatten(1).argsort(dim=1, descending=True, stable=True)
    per_step = -(-features // steps)
    source, fill = (baseline.expand_as(x), x) if insertion else (x, baseline.expand_as(x))
    current = source.clone()
    flat_current, flat_fill = _per_feature(current, features), _per_feature(fill, features)
    rows = torch.arange(n)[:, None]
    curve = [_target_probability(probabilities, current, target)]
    for step in range(steps):
        chosen = order[:, step * per_step : (step + 1) * per_step]
        flat_current[rows, chosen] = flat_fill[rows, chosen]
        curve.append(_target_probability(probabilities, current, target))
    return torch.stack(curve, dim=1)


def curve_auc(curve: Tensor) -> Tensor:
    """Area under each row of a removal curve over the removed share 0..1 (trapezoid rule), in [0, 1]:
    low is faithful for deletion, high for insertion."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def finite_mean(values: Tensor) -> float:
    """The mean of the finite entries (a metric undefined for some examples is averaged over the rest);
    NaN when none is finite."""
    finite = values[values.isfinite()]
    return finite.mean().item() if len(finite) else float("nan")


def _per_feature(x: Tensor, features: int) -> Tensor:
    """A view of `x` (N×C×H×W or N×D) as N × features × channels, so one index sets every channel."""
    if x.ndim == 4:
        return x.flatten(2).transpose(1, 2)
    return x.reshape(len(x), features, -1)


def _target_probability(probabilities: Probabilities, x: Tensor, target: Tensor) -> Tensor:
    with torch.no_grad():
        return probabilities(x).gather(1, target[:, None]).squeeze(1)
