"""Entropic variable projection: reweight a sample so that one feature has a chosen mean.

Bachoc, Gamboa, Halford, Loubes & Risser, "Explaining machine learning models using entropic variable
projection", Information and Inference 12 (2023). Among the distributions Q on the n test rows, the one
closest to the empirical P_n in KL divergence with E_Q[X_j] = t is the exponential tilt

    λ_i(ξ) = exp(ξ · x_ij) / Σ_k exp(ξ · x_kj),

where ξ solves m(ξ) = Σ_i λ_i(ξ) x_ij = t, the minimiser of the convex dual log Σ_k exp(ξ x_kj) − ξ t.
The rows are not changed, only weighted, so one-hot groups stay one-hot, every value stays one the data
holds, and the model's predictions are computed once for every stress level.

ξ is found by Newton's method, ξ ← ξ − (m(ξ) − t) / Var_λ(x_j), as in the paper; where we depart from it
and from the authors' ``ethik`` package (BFGS on the squared gap, stopped at 1e-4): each step is kept
inside the bracket of ξ values known to under- and overshoot, falling back to bisection (or to doubling
the step while one side is open), so the iteration converges for every reachable target, and it runs to
|m(ξ) − t| ≤ 1e-12 (1 + |t|) in standardised units. All levels, and all bootstrap resamples, are solved
at once, as one batch.

``base`` weights (bootstrap counts) generalise P_n to Σ_i c_i δ_{x_i} / Σ c: the tilt is then
λ_i ∝ c_i exp(ξ x_ij). A target outside the open range of the values carrying weight cannot be reached by
any finite ξ; its weights are NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

TOLERANCE = 1e-12
MAX_ITERATIONS = 200


class Tilt(NamedTuple):
    """Weights (L × n, each row sums to 1) and the tilt parameter ξ per target (L), in the feature's units."""

    weights: Tensor
    xi: Tensor


def tilt(values: Tensor, targets: Tensor, base: Tensor | None = None) -> Tilt:
    """The entropic projection of the module docstring, for each of the ``targets`` (float64 results).

    λ depends on a row only through its value, so the solver works on the distinct values with their total
    mass (:func:`tilt_distinct`; a one-hot column has two, an 8-bit pixel at most 256) and spreads each
    value's weight over its rows in proportion to their base weight.
    """
    x = _feature(values)
    base = _base(base, len(x))
    support, row_value = torch.unique(x, return_inverse=True)
    mass = torch.zeros(len(support), dtype=torch.float64).index_add_(0, row_value, base)
    weights, xi = tilt_distinct(support, mass, targets)
    share_of_value = torch.where(base > 0, base / mass[row_value], 0.0)
    return Tilt(weights[:, row_value] * share_of_value, xi)


def tilt_distinct(support: Tensor, mass: Tensor, targets: Tensor) -> Tilt:
    """The projection for a sample given as distinct values ``support`` (K) with base ``mass`` (K, or a
    batch B × K of masses, e.g. bootstrap resamples, solved together): weights (L × K, or B × L × K) are
    each value's total weight, to be shared by its rows, and ξ (L, or B × L). A sample whose mass sits on
    one value (a rare category missing from a resample) reaches no target: NaN."""
    share = mass.sum(dim=tuple(range(mass.ndim - 1))) if mass.ndim > 1 else mass
    share = share / share.sum()
    mean = share @ support
    std = (share @ (support - mean).square()).sqrt()  # the pooled sample's scale, for conditioning only
    if not std > 0:
        raise ValueError("a constant feature cannot be tilted: every weighting leaves its mean unchanged")
    z = (support - mean) / std
    goal = (targets.to(torch.float64) - mean) / std
    xi = _solve(z, mass.to(torch.float64), goal)
    return Tilt(torch.softmax(xi[..., None] * z + mass.log()[..., None, :], dim=-1), xi / std)


def _solve(z: Tensor, mass: Tensor, goal: Tensor) -> Tensor:
    """ξ (standardised units, ... × L) with Σ_k λ_k z_k = goal, λ ∝ mass · exp(ξ z), for each goal and each
    mass vector (... × K), by safeguarded Newton from 0; NaN where unreachable."""
    log_mass = mass.log()[..., None, :]
    lowest = torch.where(mass > 0, z, torch.inf).amin(dim=-1, keepdim=True)
    highest = torch.where(mass > 0, z, -torch.inf).amax(dim=-1, keepdim=True)
    reachable = (goal > lowest) & (goal < highest)
    xi = torch.zeros_like(reachable, dtype=torch.float64)
    below = torch.full_like(xi, -torch.inf)  # ξ values known to give a mean under the goal
    above = torch.full_like(xi, torch.inf)  # ... and over it
    for _ in range(MAX_ITERATIONS):
        weights = torch.softmax(xi[..., None] * z + log_mass, dim=-1)
        mean_z = weights @ z
        gap = mean_z - goal
        done = (gap.abs() <= TOLERANCE * (1 + goal.abs())) | ~reachable
        if done.all():
            return torch.where(reachable, xi, torch.nan)
        below = torch.where(gap < 0, xi, below)
        above = torch.where(gap > 0, xi, above)
        variance = (weights @ z.square() - mean_z.square()).clamp_min(torch.finfo(torch.float64).tiny)
        newton = xi - gap / variance
        inside = (newton > below) & (newton < above)
        open_step = torch.where(gap < 0, 1.0, -1.0) * xi.abs().clamp_min(1.0)
        fallback = torch.where(below.isfinite() & above.isfinite(), (below + above) / 2, xi + open_step)
        xi = torch.where(done, xi, torch.where(inside, newton, fallback))
    raise ArithmeticError(f"the entropic projection did not converge in {MAX_ITERATIONS} iterations")


def kl_to_base(weights: Tensor, base: Tensor | None = None) -> Tensor:
    """KL(λ ‖ base) per row of ``weights`` (L × n), the base uniform by default: the price of the stress."""
    reference = torch.full_like(weights, 1.0 / weights.shape[-1]) if base is None else base / base.sum()
    terms = torch.where(weights > 0, weights * (weights / reference).log(), torch.zeros_like(weights))
    return terms.sum(dim=-1)


def effective_sample_size(weights: Tensor, rows_per_weight: Tensor | None = None) -> Tensor:
    """Kish's effective number of rows 1 / Σ λ_i², per row of ``weights``: how many rows a stress rests on.

    With ``rows_per_weight``, each weight is shared equally by that many rows (the distinct values of
    :func:`tilt_distinct` and their counts)."""
    spread = 1.0 if rows_per_weight is None else rows_per_weight
    return 1.0 / (weights.square() / spread).sum(dim=-1)


def _feature(values: Tensor) -> Tensor:
    if values.ndim != 1 or len(values) < 2 or not values.is_floating_point():
        raise ValueError(
            f"a feature to tilt must be a 1-D float tensor of at least 2 rows; got dtype {values.dtype} and "
            f"shape {tuple(values.shape)}"
        )
    return values.to(torch.float64)


def _base(base: Tensor | None, length: int) -> Tensor:
    if base is None:
        return torch.ones(length, dtype=torch.float64)
    if base.shape != (length,) or (base < 0).any() or not base.sum() > 0:
        raise ValueError(
            f"base weights must be {length} non-negative numbers, not all 0 (e.g. bootstrap counts)"
        )
    return base.to(torch.float64)
