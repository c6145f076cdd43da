"""Differentiable Wasserstein-2 penalty between the predictions of two protected groups.

Risser, Gonzalez Sanz, Vincenot, Loubes, "Tackling Algorithmic Bias in Neural-Network Classifiers using
Wasserstein-2 Regularization", JMIV 2022 (authors' code: github.com/lrisser/W2reg). The penalty is

    W₂²(H₀, H₁) = ∫₀¹ (H₀⁻¹(τ) − H₁⁻¹(τ))² dτ,

with H_s the distribution of the network's outputs over the samples with S = s. The authors back-propagate
a hand-derived gradient computed from cumulative histograms of a separate, larger set of observations; here
both quantile functions come from the mini-batch itself and autograd differentiates through the sort, so
the batch must hold both groups.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from trustbench.metrics.fairness import check_binary


def w2_squared(scores_a: Tensor, scores_b: Tensor, n_quantiles: int | None = None) -> Tensor:
    """W₂² (squared) between two 1-D samples, from their linearly interpolated empirical quantile functions.

    Both quantile functions are read at the K midpoint levels τ_k = (k − ½)/K, k = 1..K, with
    ``torch.quantile``'s default linear interpolation (the order statistic at position τ(n − 1), 0-based),
    and W₂² ≈ (1/K) Σ_k (Q_a(τ_k) − Q_b(τ_k))². K is ``n_quantiles``, by default the larger sample size; the
    authors' code integrates on the fixed grid τ = 0.01, …, 0.99. The estimate is 0 for identical samples
    and c² when ``scores_b = scores_a + c``. With the default K it tends to the exact empirical W₂² of
    :func:`trustbench.metrics.fairness.wasserstein2_distance` (squared) as both samples grow; a fixed K
    keeps an integration error that does not shrink with n (small for bounded scores: under 0.2% in the
    tests, for probabilities with K = 99). It is vectorised and differentiable with respect to both inputs
    (not at tied values, where sorting is not).
    """
    for name, scores in (("scores_a", scores_a), ("scores_b", scores_b)):
        if not scores.is_floating_point() or scores.ndim != 1 or len(scores) == 0:
            raise ValueError(
                f"{name} must be a non-empty 1-D float tensor; got dtype {scores.dtype} and shape "
                f"{tuple(scores.shape)}. Pass the scores of one group's samples."
            )
    if scores_a.dtype != scores_b.dtype:
        raise ValueError(f"scores_a is {scores_a.dtype}, scores_b {scores_b.dtype}; cast them to one dtype.")
    _check_n_quantiles(n_quantiles)
    values = torch.cat([scores_a, scores_b])
    order = torch.cat([scores_a.argsort(), scores_b.argsort() + len(scores_a)])
    return _sorted_w2_squared(values, order, len(scores_b), n_quantiles)


def _grouped_w2_squared(
    values: Tensor, group: Tensor, n_privileged: int, n_quantiles: int | None, weight: float = 1.0
) -> Tensor:
    """`weight` · :func:`w2_squared` of ``values[group == 0]`` against ``values[group == 1]``, from one sort.

    For `values` in [0, 2) (probabilities and their errors), whose float bit patterns, read as integers of
    the same width, are below 2^(width − 2) and ordered as the values are: adding 2^(width − 2) to group 1's
    patterns makes one integer key whose sort puts group 0's order statistics first and group 1's after
    them, each group in the exact order of its values. (Adding a group offset to the float values instead
    rounds them: in float32, p + 2 cannot tell apart probabilities closer than 2.4e-7, and the gradient of
    near-ties went to the wrong row.) ``group`` holds 0/1, integer or bool.
    """
    bits = values.view(_SAME_WIDTH_INTEGER[values.dtype])  # integers: no gradient, no detach needed
    order = bits.add(group, alpha=1 << (bits.element_size() * 8 - 2)).argsort()
    return _sorted_w2_squared(values, order, n_privileged, n_quantiles, weight)


_SAME_WIDTH_INTEGER = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}


def _sorted_w2_squared(
    values: Tensor, order: Tensor, n_privileged: int, n_quantiles: int | None, weight: float = 1.0
) -> Tensor:
    """`weight` · W₂² between the first ``len(values) − n_privileged`` entries of ``values[order]`` (group 0,
    ascending) and the rest (group 1, ascending).

    Both quantile functions are read from the one sorted order with one gather, at ``torch.quantile``'s
    linear interpolation at position τ(n − 1). Training runs this on every step, where each kernel costs
    about as much as its launch, so it takes few: the K differences Q₀(τ_k) − Q₁(τ_k), each scaled by
    √(weight / K), are one weighted sum of the four gathered neighbours (weights from
    :func:`_quantile_plan`, scaled there once), and `weight` times their mean square is their dot product
    with themselves (a square, a mean and a product by the weight take three kernels forward and five
    backward, the dot product one and three). The value is the same up to float rounding.
    """
    n_unprivileged = len(values) - n_privileged
    k = n_quantiles or max(n_unprivileged, n_privileged)
    positions, weights = _quantile_plan(
        n_unprivileged, n_privileged, k, math.sqrt(weight / k), values.dtype, values.device
    )
    neighbours = values[order[positions]]  # 2 × 2 × K: low / high, then group 0 / group 1
    differences = (neighbours * weights).sum(dim=(0, 1))
    return differences.dot(differences)


@functools.lru_cache(maxsize=1024)
@torch.inference_mode(False)  # training saves the weights for backward, even if a first call was evaluation's
def _quantile_plan(
    n_unprivileged: int, n_privileged: int, k: int, scale: float, dtype: torch.dtype, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Where the K levels' order statistics sit in the (group, value)-sorted batch, and how to combine them.

    Returns ``positions`` (2 × 2 × K: low / high neighbour, then group 0 / group 1) and ``weights`` of the
    same shape: (1 − f, f) for the low and high neighbour at interpolation fraction f, negated for group 1
    and times `scale`, so summing weights · neighbours over the first two axes gives
    scale · (Q₀(τ_k) − Q₁(τ_k)). They depend only on the group sizes and the scale, so a training run,
    whose batches have a few hundred possible splits, computes each once instead of once per step.
    """
    levels = (torch.arange(k, dtype=dtype, device=device) + 0.5) / k
    lows, highs, fractions = [], [], []
    for start, size in ((0, n_unprivileged), (n_unprivileged, n_privileged)):
        position = levels * (size - 1)
        low = position.floor().long()
        lows.append(start + low)
        highs.append(start + (low + 1).clamp_max(size - 1))
        fractions.append(position - low)
    fraction = torch.stack(fractions)
    sign = torch.tensor([[scale], [-scale]], dtype=dtype, device=device)
    return torch.stack([torch.stack(lows), torch.stack(highs)]), torch.stack([1 - fraction, fraction]) * sign


@dataclass(frozen=True)
class W2Penalty:
    """The paper's two penalties: W₂² between groups S = 0 and S = 1 of what ``compare`` names.

    ``compare="predictions"`` (the authors' ``DistBetween='All_predictions'``) compares the predicted
    probabilities of class 1: equal distributions give equal selection rates at every threshold, so it
    targets disparate impact. ``compare="errors"`` (their ``'Predictions_errors'``) compares the absolute
    errors |p − y|, targeting equal error rates; the authors' code compares squared errors (y − p)², a
    monotone function of the same |p − y| that vanishes for the same models but weighs small errors less.

    Probabilities, not logits, are compared, as in the paper, where H_s is the distribution of the output
    h(x) = P̂(Y = 1 | x): values in [0, 1] bound W₂² by 1, so one weight λ means the same across models,
    whereas logit distributions can be brought together by shrinking every logit towards 0, which rewards
    under-confidence rather than equal treatment. A batch without both groups has no defined penalty and
    gives 0 (still part of the graph), so training goes on. ``n_quantiles`` is passed to :func:`w2_squared`.
    """

    compare: Literal["predictions", "errors"] = "predictions"
    n_quantiles: int | None = None

    def __post_init__(self) -> None:
        if self.compare not in ("predictions", "errors"):
            raise ValueError(f"compare must be 'predictions' or 'errors'; got {self.compare!r}.")
        _check_n_quantiles(self.n_quantiles)

    def __call__(self, probs: Tensor, group: Tensor, y_true: Tensor | None = None) -> Tensor:
        """W₂² for one batch: ``probs`` (N,) of class 1, ``group`` (N,) 0/1 with 0 = unprivileged.

        ``y_true`` (N,) holds the 0/1 labels, needed only when comparing errors. Returns a 0-dim tensor in
        [0, 1] to add, weighted, to the training loss.
        """
        if not probs.is_floating_point() or probs.ndim != 1 or not ((probs >= 0) & (probs <= 1)).all():
            raise ValueError(
                f"probs must be a 1-D float tensor of class-1 probabilities in [0, 1]; got dtype "
                f"{probs.dtype} and shape {tuple(probs.shape)}. Apply a sigmoid to binary logits, or take "
                "softmax(logits)[:, 1]."
            )
        privileged = check_binary("group", group, len(probs))
        if self.compare == "errors":
            if y_true is None:
                raise ValueError(
                    "compare='errors' needs y_true, the 0/1 labels of the batch; pass y_true=..."
                )
            y_true = check_binary("y_true", y_true, len(probs))
        return self.unchecked(probs, privileged, y_true)

    def unchecked(
        self, probs: Tensor, group: Tensor, y_true: Tensor | None = None, weight: float = 1.0
    ) -> Tensor:
        """`weight` times the penalty, without the checks of ``__call__``, for training batches whose
        groups and labels the data module checked once per dataset (0/1 integers or bools) and
        probabilities from a sigmoid.

        Training calls it on every step, where the checks would cost a reduction and a host sync each;
        the weight (>= 0) is applied inside, where it costs no kernel of its own.
        """
        values = probs if self.compare == "predictions" else (probs - y_true.to(probs.dtype)).abs()
        n_privileged = int(group.sum())
        if n_privileged in (0, len(probs)):  # one group only: no penalty defined
            return probs.sum() * 0.0
        return _grouped_w2_squared(values, group, n_privileged, self.n_quantiles, weight=weight)


def _check_n_quantiles(n_quantiles: int | None) -> None:
    if n_quantiles is not None and n_quantiles < 1:
        raise ValueError(f"n_quantiles must be a positive number of levels, or None; got {n_quantiles}.")
