"""Quantile-constrained Wasserstein projection: move one feature so some of its quantiles take chosen values.

Il Idrissi, Bousquet, Gamboa, Iooss & Loubes, "Quantile-constrained Wasserstein projections for robust
interpretability of numerical and machine learning models" (arXiv 2209.11539, 2022). The feature's marginal
F is replaced by the distribution G closest to it in W2 among those whose quantile function meets
G⁻¹(α_k) = t_k, and each row moves through its rank, x ↦ G⁻¹(F̂(x)), so every other feature and the
dependence between them (the copula) are kept. In one dimension W2²(F, G) = ∫₀¹ (F⁻¹ − G⁻¹)², so G⁻¹ is the
projection of F⁻¹ on nondecreasing functions through the points (α_k, t_k):

- :func:`isotonic_transport`, the exact solution: on the sample it is the constrained isotonic regression
  of the sorted values, min Σ_i (x_(i) − y_i)² over y_1 ≤ … ≤ y_n with y_{⌈n α_k⌉} = t_k, solved by clipping
  each x_(i) between the constraints before and after it (clipping is optimal for the box constraints that
  monotonicity implies, and is itself monotone). Values between the old and the new quantile collapse
  onto t_k: an atom, which the paper's smoother variant avoids;
- :func:`polynomial_transport`, that variant: G⁻¹ sought among nondecreasing polynomials of a fixed
  degree (Bernstein form with nondecreasing coefficients), by least squares against the sorted sample
  with G⁻¹(u*) = t; no atom, but the polynomial also smooths the unstressed quantile function, so its
  unstressed level (t the current quantile) is not the identity. One constraint here, solved exactly:
  the constraint fixes the constant coefficient and the increments are a non-negative least-squares
  problem (``scipy.optimize.nnls``). This is our reading of the paper's isotonic polynomials; we found no
  reference code;
- :func:`share_transport`, the same rank transport for a one-hot category's indicator: raising its share
  moves rows of other categories into it, lowering it moves rows out to the other categories in
  proportion to their shares, so every row stays one-hot.

Ranks: the i-th smallest value (1-based) stands for level u_i = (i − ½)/n, and ties are broken by a
seeded random order, as the empirical copula of a discrete feature is defined only up to that choice;
tied values may therefore move apart, never crossing. Quantiles are the lower empirical quantile
x_(⌈n α⌉) (numpy's ``method="inverted_cdf"``), which the transported sample meets exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from scipy.optimize import nnls
from torch import Tensor

LEVEL_SLACK = 1e-9  # n·α computed in floating point may land a hair above an integer


def rank_order(values: Tensor, generator: torch.Generator) -> Tensor:
    """Indices sorting ``values`` ascending, ties in a random order drawn from ``generator``."""
    shuffled = torch.randperm(len(values), generator=generator)
    return shuffled[torch.argsort(values[shuffled], stable=True)]


def lower_quantile_index(length: int, level: float) -> int:
    """0-based position in the sorted sample of the lower empirical quantile at ``level`` in (0, 1]."""
    if not 0 < level <= 1:
        raise ValueError(f"a quantile level must lie in (0, 1], e.g. 0.5 for the median; got {level}")
    return max(math.ceil(length * level - LEVEL_SLACK), 1) - 1


def isotonic_transport(values: Tensor, constraints: Sequence[tuple[float, float]], order: Tensor) -> Tensor:
    """The exact projection of the module docstring: ``values`` moved so that the lower quantile at each
    level α_k is t_k, for ``constraints`` [(α_1, t_1), ...] with increasing α and nondecreasing t; ``order``
    is the rank order of the values (:func:`rank_order`)."""
    x = values.to(torch.float64)
    positions = _check_constraints(len(x), constraints)
    lower = torch.full_like(x, -torch.inf)
    upper = torch.full_like(x, torch.inf)
    for position, (_, target) in zip(positions, constraints, strict=True):
        lower[position:] = target  # targets are nondecreasing: the latest constraint is the binding one
    for position, (_, target) in reversed(list(zip(positions, constraints, strict=True))):
        upper[: position + 1] = target
    moved = torch.empty_like(x)
    moved[order] = torch.minimum(torch.maximum(x[order], lower), upper)
    return moved


def polynomial_transport(
    values: Tensor, level: float, targets: Sequence[float], degree: int, order: Tensor
) -> Tensor:
    """The smooth variant of the module docstring, one transported copy of ``values`` per target (L × n):
    rank i moves to P(u_i), P a nondecreasing polynomial of ``degree`` fitted to the sorted values with
    P(u at ``level``) = target, clipped to the values' range so that no row leaves the data's support."""
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
        raise ValueError(f"the polynomial degree must be a positive integer, e.g. 12; got {degree!r}")
    x = values.to(torch.float64)
    position = lower_quantile_index(len(x), level)
    levels = (torch.arange(len(x), dtype=torch.float64) + 0.5) / len(x)
    # coefficients β = β_0 + cumulative sums of increments δ ≥ 0; the basis sums to 1, so P = β_0 + (B L) δ
    increments = bernstein_basis(levels, degree) @ torch.ones(degree + 1, degree, dtype=torch.float64).tril(
        -1
    )
    increments = increments - increments[position]  # the constraint row: P(u*) = target whatever δ is
    moved = torch.empty(len(targets), len(x), dtype=torch.float64)
    for row, target in enumerate(targets):
        delta = _nonnegative_least_squares(increments, x[order] - target)
        moved[row, order] = (target + increments @ delta).clamp(x.min(), x.max())
    return moved


def share_transport(
    onehot: Tensor, category: int, shares: Sequence[float], generator: torch.Generator
) -> Tensor:
    """``onehot`` (n × K, one 1 per row) with round(share · n) rows in column ``category``, one copy per share
    (L × n × K): the rank transport of the category's indicator, whose ties are broken at random. Raising
    the share moves the highest-ranked rows of other categories in; lowering it moves the lowest-ranked
    rows out, each to the category of a random row outside (so the others keep their proportions). The
    ranks and those rows are drawn once, so a larger share moves a superset of the rows."""
    inside = onehot[:, category] == 1
    have, length = int(inside.sum()), len(onehot)
    if not 0 < have < length:
        raise ValueError(
            f"column {category} holds {have} of {length} rows; a share needs rows in and out of it"
        )
    order = rank_order(inside.to(torch.float64), generator)  # rows outside first, then rows inside
    outside = (~inside).nonzero().squeeze(1)
    donors = onehot[outside[torch.randint(len(outside), (length,), generator=generator)]]
    moved = onehot.expand(len(shares), -1, -1).clone()
    for row, share in enumerate(shares):
        wanted = round(share * length)
        if not 0 < wanted < length:
            raise ValueError(
                f"a share must leave rows in and out of the category; got {share} of {length} rows"
            )
        joining = order[length - wanted : length - have]
        leaving = order[length - have : length - wanted]
        moved[row, joining] = torch.zeros_like(onehot[0]).index_fill_(0, torch.tensor([category]), 1)
        moved[row, leaving] = donors[leaving]
    return moved


def _nonnegative_least_squares(design: Tensor, response: Tensor) -> Tensor:
    """argmin_{δ ≥ 0} ‖design · δ − response‖² for a tall design (n × d), through its d × d Cholesky factor R:
    the objective is ‖R δ − R⁻ᵀ designᵀ response‖² plus a constant, so NNLS runs on d rows instead of n."""
    factor = torch.linalg.cholesky(design.T @ design, upper=True)
    rotated = torch.linalg.solve_triangular(factor.T, (design.T @ response)[:, None], upper=False)
    delta, _ = nnls(factor.numpy(), rotated.squeeze(1).numpy())
    return torch.from_numpy(delta)


def bernstein_basis(levels: Tensor, degree: int) -> Tensor:
    """b_{j,d}(u) = C(d, j) u^j (1 − u)^(d − j) for j = 0..d, one row per level (float64)."""
    u = levels.to(torch.float64)[:, None]
    ones = torch.ones_like(u)
    up = torch.cat([ones, u.expand(-1, degree).cumprod(dim=1)], dim=1)  # u^j, j = 0..d
    down = torch.cat([ones, (1 - u).expand(-1, degree).cumprod(dim=1)], dim=1).flip(1)  # (1 − u)^(d − j)
    binomial = torch.tensor([math.comb(degree, j) for j in range(degree + 1)], dtype=torch.float64)
    return binomial * up * down


def _check_constraints(length: int, constraints: Sequence[tuple[float, float]]) -> list[int]:
    """Positions in the sorted sample of the constrained quantiles; refuses constraints no sample can meet."""
    if not constraints:
        raise ValueError("give at least one quantile constraint (level, value), e.g. [(0.5, 40.0)]")
    levels = [level for level, _ in constraints]
    targets = [target for _, target in constraints]
    if any(b <= a for a, b in itertools.pairwise(levels)) or any(
        b < a for a, b in itertools.pairwise(targets)
    ):
        raise ValueError(
            f"quantile constraints need increasing levels and nondecreasing values (a quantile function is "
            f"nondecreasing); got {list(constraints)}"
        )
    positions = [lower_quantile_index(length, level) for level in levels]
    for (a, b), (ta, tb) in zip(itertools.pairwise(positions), itertools.pairwise(targets), strict=True):
        if a == b and ta != tb:
            raise ValueError(
                f"two constraints fall on the same order statistic of {length} rows with different values "
                f"({ta} and {tb}); use levels at least 1/{length} apart"
            )
    return positions
