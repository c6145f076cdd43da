"""Quantile-constrained W2 transport: on real Adult features it keeps every rank order and meets each
quantile constraint exactly; it is the constrained least-squares solution a generic optimiser finds; the
polynomial variant is the best nondecreasing Bernstein fit; a category's share moves whole one-hot rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from real_data import real
from scipy.optimize import minimize

from trustbench.data.arrays import ArrayDataset
from trustbench.data.tabular import feature_columns
from trustbench.stress.transport import (
    bernstein_basis,
    isotonic_transport,
    polynomial_transport,
    rank_order,
    share_transport,
)


@pytest.fixture(scope="module")
def adult() -> ArrayDataset:
    return real("adult")


def adult_feature(adult: ArrayDataset, name: str) -> torch.Tensor:
    """A continuous Adult test feature in its original units, float64 (integers: ties everywhere)."""
    column = adult.tabular.feature_names.index(name)
    low, high = adult.tabular.ranges[name]
    return (low + adult.x_test[:, column].double() * (high - low)).round()


def lower_quantile(values: torch.Tensor, level: float) -> float:
    return float(np.quantile(values.numpy(), level, method="inverted_cdf"))


def order_of(values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return rank_order(values, torch.Generator().manual_seed(seed))


def assert_rank_order_kept(before: torch.Tensor, after: torch.Tensor) -> None:
    """x_i < x_j implies T(x_i) <= T(x_j) for every pair: sorted by x, ties by T, T never decreases."""
    by_value = torch.from_numpy(np.lexsort((after.numpy(), before.numpy())))
    assert (torch.diff(after[by_value]) >= 0).all()


CONSTRAINTS = {
    "age": [(0.25, 30.0), (0.5, 45.0), (0.9, 70.0)],  # the median moves up 8 years, a lower quartile up
    "hours_per_week": [(0.1, 20.0), (0.5, 30.0)],  # the median down from 40
    "education_num": [(0.5, 13.0), (0.75, 13.0), (0.95, 16.0)],  # an atom spanning two constraints
}


@pytest.mark.parametrize("name", list(CONSTRAINTS))
def test_isotonic_transport_meets_each_constraint_exactly_and_keeps_every_rank_order(
    adult: ArrayDataset, name: str
) -> None:
    values = adult_feature(adult, name)
    moved = isotonic_transport(values, CONSTRAINTS[name], order_of(values))
    assert [lower_quantile(moved, level) for level, _ in CONSTRAINTS[name]] == [
        t for _, t in CONSTRAINTS[name]
    ]
    assert_rank_order_kept(values, moved)
    assert values.min() <= moved.min() and moved.max() <= values.max()


def test_constraining_the_current_quantile_moves_nothing(adult: ArrayDataset) -> None:
    values = adult_feature(adult, "age")
    median = lower_quantile(values, 0.5)
    assert torch.equal(isotonic_transport(values, [(0.5, median)], order_of(values)), values)


def test_isotonic_transport_is_the_constrained_least_squares_solution() -> None:
    """min Σ (x_(i) − y_i)² over y nondecreasing with y at the constrained ranks fixed, by SLSQP."""
    values = torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0, 8.0], dtype=torch.float64)
    constraints = [(0.25, 3.5), (0.75, 5.5)]  # ranks 3 and 9 of 12
    order = order_of(values)
    moved = isotonic_transport(values, constraints, order)
    x = values[order].numpy()
    problem = [{"type": "ineq", "fun": lambda y: np.diff(y)}] + [
        {"type": "eq", "fun": lambda y, i=i, t=t: y[i] - t} for i, t in ((2, 3.5), (8, 5.5))
    ]
    found = minimize(lambda y: np.sum((x - y) ** 2), x, constraints=problem, method="SLSQP", tol=1e-14)
    assert found.success
    np.testing.assert_allclose(moved[order].numpy(), found.x, atol=1e-6)


def test_ties_are_broken_at_random_and_never_cross(adult: ArrayDataset) -> None:
    values = adult_feature(adult, "education_num")  # 16 values for 16,281 rows
    first, second = (isotonic_transport(values, [(0.5, 11.5)], order_of(values, seed)) for seed in (0, 1))
    assert not torch.equal(first, second)  # the tied rows at the median's value split differently
    assert torch.equal(first.sort().values, second.sort().values)  # the same marginal either way


def test_polynomial_transport_meets_its_constraint_exactly_keeps_ranks_and_the_range(
    adult: ArrayDataset,
) -> None:
    values = adult_feature(adult, "age")
    targets = [25.0, 37.0, 55.0]
    moved = polynomial_transport(values, 0.5, targets, 12, order_of(values))
    for target, row in zip(targets, moved, strict=True):
        assert lower_quantile(row, 0.5) == target
        assert_rank_order_kept(values, row)
        assert values.min() <= row.min() and row.max() <= values.max()
    assert len(torch.unique(moved[1])) > 1000  # smooth: ages no longer sit on a few integers (no atom)


def test_polynomial_is_the_best_nondecreasing_bernstein_fit_under_the_constraint() -> None:
    values = torch.linspace(0, 1, 40, dtype=torch.float64).pow(3) * 10  # convex quantile function
    degree, target = 4, 4.0
    moved = polynomial_transport(values, 0.5, [target], degree, order_of(values))[0]
    u = (torch.arange(40, dtype=torch.float64) + 0.5) / 40
    basis = bernstein_basis(u, degree).numpy()
    x = values.numpy()
    problem = [
        {"type": "ineq", "fun": lambda b: np.diff(b)},
        {"type": "eq", "fun": lambda b: basis[19] @ b - target},  # the lower median is the 20th of 40
    ]
    found = minimize(lambda b: np.sum((x - basis @ b) ** 2), np.linspace(0, 10, degree + 1),
                     constraints=problem, method="SLSQP", tol=1e-14)  # fmt: skip
    assert found.success
    fitted = np.clip(basis @ found.x, x.min(), x.max())  # then clipped to the data's range
    np.testing.assert_allclose(moved.numpy(), fitted, atol=1e-6)
    assert (basis @ found.x).min() < x.min()  # the clip mattered here


def test_share_transport_keeps_rows_one_hot_and_hits_each_share(adult: ArrayDataset) -> None:
    columns = list(feature_columns(adult.tabular, "marital_status"))
    onehot = adult.x_test[:, columns]
    category = [adult.tabular.feature_names[c] for c in columns].index("marital_status=Never-married")
    shares = [0.1, 0.33, 0.6]
    moved = share_transport(onehot, category, shares, torch.Generator().manual_seed(0))
    assert moved.sum(dim=2).eq(1).all() and ((moved == 0) | (moved == 1)).all()
    assert moved[:, :, category].sum(dim=1).tolist() == [round(s * len(onehot)) for s in shares]
    raised, lowered = moved[2, :, category] == 1, moved[0, :, category] == 1
    assert (onehot[:, category] == 1)[~raised].sum() == 0  # raising only adds rows
    assert (lowered & (onehot[:, category] == 0)).sum() == 0  # lowering only removes rows
    untouched = (moved[2] == onehot).all(dim=1)
    assert untouched.sum() == len(onehot) - (round(0.6 * len(onehot)) - int(onehot[:, category].sum()))


def test_bad_constraints_are_refused_with_what_is_allowed() -> None:
    values = torch.arange(10, dtype=torch.float64)
    order = order_of(values)
    with pytest.raises(ValueError, match="increasing levels and nondecreasing values"):
        isotonic_transport(values, [(0.5, 5.0), (0.3, 2.0)], order)
    with pytest.raises(ValueError, match="same order statistic"):
        isotonic_transport(values, [(0.51, 5.0), (0.55, 6.0)], order)
