"""Regression metrics and predictive distributions: against scikit-learn / scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error

from trustbench.methods.regression.distributions import BinnedDensity, GaussianMixture
from trustbench.metrics import regression as reg

GENERATOR = np.random.default_rng(0)
PREDICTION = torch.from_numpy(GENERATOR.normal(size=200))
TARGET = PREDICTION + torch.from_numpy(GENERATOR.normal(scale=0.5, size=200))


def test_rmse_and_mae_match_scikit_learn() -> None:
    assert reg.rmse(PREDICTION, TARGET) == pytest.approx(math.sqrt(mean_squared_error(TARGET, PREDICTION)))
    assert reg.mae(PREDICTION, TARGET) == pytest.approx(mean_absolute_error(TARGET, PREDICTION))


def test_spearman_matches_scipy_on_uncertainty_and_absolute_error() -> None:
    uncertainty = torch.from_numpy(GENERATOR.random(200))
    expected = stats.spearmanr(uncertainty, (PREDICTION - TARGET).abs()).statistic
    assert reg.spearman(uncertainty, PREDICTION, TARGET) == pytest.approx(expected)
    assert math.isnan(reg.spearman(torch.ones(200), PREDICTION, TARGET))


def test_sparsification_by_hand_on_four_rows_and_two_bins() -> None:
    """Errors 1..4 with the uncertainty in reverse order: keeping the 2 most certain keeps errors 4 and 3."""
    prediction, target = torch.zeros(4), torch.tensor([1.0, 2.0, 3.0, 4.0])
    worst = reg.sparsification(torch.tensor([4.0, 3.0, 2.0, 1.0]), prediction, target, "rmse", bins=2)
    full, kept, oracle = math.sqrt(30 / 4), math.sqrt(25 / 2), math.sqrt(5 / 2)
    np.testing.assert_allclose(worst.curve, [1, kept / full])
    np.testing.assert_allclose(worst.oracle, [1, oracle / full])
    assert worst.ause == pytest.approx(kept / full - oracle / full)
    assert worst.aurg == pytest.approx(1 - kept / full)  # negative: worse than dropping rows at random
    best = reg.sparsification(target, prediction, target, "rmse", bins=2)
    assert best.ause == 0 and best.aurg == pytest.approx(1 - oracle / full)


def test_absrel_sparsification_orders_its_oracle_by_relative_error() -> None:
    target = torch.tensor([1.0, 10.0, 2.0, 4.0])
    prediction = torch.tensor([2.0, 12.0, 2.5, 4.0])  # relative errors 1, 0.2, 0.25, 0
    curves = reg.sparsification(torch.tensor([9.0, 1.0, 2.0, 0.0]), prediction, target, "absrel", bins=2)
    full = (1 + 0.2 + 0.25 + 0) / 4
    np.testing.assert_allclose(curves.oracle, [1, (0 + 0.2) / 2 / full])
    np.testing.assert_allclose(curves.curve, curves.oracle)  # this uncertainty ranks like the oracle
    with pytest.raises(ValueError, match="positive targets"):
        reg.sparsification(torch.ones(4), prediction, -target, "absrel")


def test_coverage_counts_bounds_as_inside_and_width_is_the_mean() -> None:
    lower, upper = torch.tensor([0.0, 0.0, 0.0, 0.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert reg.coverage(lower, upper, torch.tensor([1.0, 2.5, -0.1, 0.0])) == 0.5
    assert reg.width(lower, upper) == 2.5


def test_quantile_calibration_error_by_hand() -> None:
    """Every CDF value 0: each level sees all targets below it, so the error is Σ (p_j − 1)²."""
    expected = sum((round(0.05 * j, 2) - 1) ** 2 for j in range(1, 20))
    assert reg.quantile_calibration_error(torch.zeros(50)) == pytest.approx(expected)
    assert reg.quantile_calibration_error(torch.linspace(0, 1, 100_001)) == pytest.approx(0, abs=1e-8)


def test_gaussian_mixture_density_cdf_and_quantiles_match_scipy() -> None:
    weights = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
    means = torch.tensor([[-1.0, 2.0]], dtype=torch.float64)
    stds = torch.tensor([[0.5, 1.5]], dtype=torch.float64)
    mixture = GaussianMixture(weights, means, stds)
    y = torch.tensor([0.4], dtype=torch.float64)
    density = 0.3 * stats.norm.pdf(0.4, -1, 0.5) + 0.7 * stats.norm.pdf(0.4, 2, 1.5)
    cdf = 0.3 * stats.norm.cdf(0.4, -1, 0.5) + 0.7 * stats.norm.cdf(0.4, 2, 1.5)
    assert float(mixture.log_prob(y)) == pytest.approx(math.log(density))
    assert float(mixture.cdf(y)) == pytest.approx(cdf)
    assert float(mixture.cdf(mixture.quantile(0.9))) == pytest.approx(0.9, abs=1e-9)
    assert float(mixture.mean()) == pytest.approx(0.3 * -1 + 0.7 * 2)
    variance = 0.3 * 0.25 + 0.7 * 2.25 + 0.3 * (-1 - 1.1) ** 2 + 0.7 * (2 - 1.1) ** 2
    assert float(mixture.variance()) == pytest.approx(variance)


def test_rescaling_to_target_units_shifts_the_log_density_by_log_scale() -> None:
    mixture = GaussianMixture.gaussian(torch.tensor([0.5]), torch.tensor([2.0]))
    moved = mixture.rescaled(10.0, 3.0)
    assert float(moved.log_prob(torch.tensor([10 + 3 * 1.2]))) == pytest.approx(
        float(mixture.log_prob(torch.tensor([1.2]))) - math.log(3)
    )
    assert float(moved.log_prob(torch.tensor([11.0]))) == pytest.approx(stats.norm.logpdf(11, 11.5, 6))


def test_binned_density_is_uniform_within_bins() -> None:
    """Bins [0,1), [1,3), [3,4] with masses 0.2, 0.5, 0.3."""
    density = BinnedDensity(torch.tensor([[0.0, 1.0, 3.0, 4.0]]), torch.tensor([[0.2, 0.5, 0.3]]))
    assert float(density.mean()) == pytest.approx(0.2 * 0.5 + 0.5 * 2 + 0.3 * 3.5)
    assert float(density.log_prob(torch.tensor([2.0]))) == pytest.approx(math.log(0.5 / 2))
    assert float(density.log_prob(torch.tensor([5.0]))) == pytest.approx(math.log(0.3 / 1))  # the end bin
    assert float(density.cdf(torch.tensor([2.0]))) == pytest.approx(0.2 + 0.25)
    assert float(density.quantile(0.45)) == pytest.approx(2.0)
    spread = 0.2 * (0.5 - 2.15) ** 2 + 0.5 * (2 - 2.15) ** 2 + 0.3 * (3.5 - 2.15) ** 2
    assert float(density.centre_variance()) == pytest.approx(spread)
    assert float(density.variance()) == pytest.approx(spread + (0.2 * 1 + 0.5 * 4 + 0.3 * 1) / 12)
