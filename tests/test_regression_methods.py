"""Regression methods' pieces: losses, CaR's bins, conformal quantiles, SLURP's side learner, rotation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from trustbench.backbones.encoder_decoder import EncoderDecoder
from trustbench.backbones.mlp import MLP
from trustbench.data.rotated_mnist import rotate
from trustbench.methods.regression.base import gaussian_nll
from trustbench.methods.regression.car import ClassificationAsRegression, bin_edges
from trustbench.methods.regression.conformal import ConformalInterval
from trustbench.methods.regression.gaussian import GaussianRegressor
from trustbench.methods.regression.sampled import RegressionEnsemble
from trustbench.methods.regression.slurp import SideSettings, Slurp


def adam(params):
    return torch.optim.Adam(params, lr=1e-2)


def test_gaussian_nll_equals_torch_and_beta_reweights_rows() -> None:
    mean, log_variance, y = torch.randn(50), torch.randn(50), torch.randn(50)
    expected = F.gaussian_nll_loss(mean, y, log_variance.exp())
    assert float(gaussian_nll(mean, log_variance, y)) == pytest.approx(float(expected), rel=1e-6)
    per_row = 0.5 * (log_variance + (y - mean) ** 2 / log_variance.exp())
    beta_half = float((per_row * log_variance.exp().sqrt()).mean())
    assert float(gaussian_nll(mean, log_variance, y, beta=0.5)) == pytest.approx(beta_half, rel=1e-6)


def test_car_log_bins_are_geometric_and_targets_train_on_their_bin() -> None:
    edges = bin_edges(1.0, 1000.0, 3, "log")
    torch.testing.assert_close(edges, torch.tensor([1.0, 10.0, 100.0, 1000.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="positive targets"):
        bin_edges(-1.0, 10.0, 4, "log")
    backbone = MLP((3,), num_classes=3, hidden_sizes=(8,))
    car = ClassificationAsRegression(backbone, 3, adam, bins=3, spacing="log", target_range=(1.0, 1000.0))
    x, y = torch.randn(4, 3), torch.tensor([5.0, 50.0, 500.0, 2000.0])  # raw units (scale (0, 1))
    expected = F.cross_entropy(backbone(x), torch.tensor([0, 1, 2, 2]))
    assert float(car.training_loss(x, y)) == pytest.approx(float(expected))
    prediction = car.predict(x)
    probs = backbone(x).softmax(1)
    centres = torch.tensor([5.5, 55.0, 550.0])
    torch.testing.assert_close(prediction.distribution.mean(), probs @ centres)
    spread = (probs * (centres[None, :] - (probs @ centres)[:, None]) ** 2).sum(1)
    torch.testing.assert_close(prediction.uncertainty, spread)


def test_car_refuses_a_head_that_is_not_its_bins() -> None:
    with pytest.raises(ValueError, match="head of bins=8"):
        ClassificationAsRegression(MLP((3,), num_classes=2), 2, adam, bins=8)


def test_conformal_quantile_is_the_rank_ceil_n_plus_1_times_1_minus_alpha() -> None:
    y, mean = torch.arange(1.0, 10.0), torch.zeros(9)  # residuals 1..9
    interval = ConformalInterval.calibrate(y, mean, torch.ones(9), "residual", 0.1)
    assert interval.quantile == 9.0  # ceil(10 · 0.9) = 9th smallest
    assert ConformalInterval.calibrate(y, mean, torch.ones(9), "residual", 0.3).quantile == 7.0
    assert ConformalInterval.calibrate(y[:5], mean[:5], torch.ones(5), "residual", 0.1).quantile == math.inf
    normalized = ConformalInterval.calibrate(y, mean, torch.full((9,), 2.0), "normalized", 0.1)
    lower, upper = normalized.bounds(torch.tensor([1.0]), torch.tensor([3.0]))
    assert (float(lower), float(upper)) == (1 - 4.5 * 3, 1 + 4.5 * 3)


def test_conformal_intervals_cover_at_least_90_percent_of_exchangeable_rows() -> None:
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(4000, generator=generator) * torch.linspace(0.5, 3, 4000)
    interval = ConformalInterval.calibrate(noise[::2], torch.zeros(2000), torch.ones(2000), "residual", 0.1)
    lower, upper = interval.bounds(torch.zeros(2000), torch.ones(2000))
    inside = ((lower <= noise[1::2]) & (noise[1::2] <= upper)).float().mean()
    assert 0.88 <= float(inside) <= 0.93


def test_regression_ensemble_reports_epistemic_variance_apart() -> None:
    torch.manual_seed(0)
    ensemble = RegressionEnsemble(MLP((3,), num_classes=2, hidden_sizes=(8,)), 2, adam, num_members=3)
    x = torch.randn(5, 3)
    distribution = ensemble.predict(x).distribution
    torch.testing.assert_close(distribution.means, torch.stack([m(x)[:, 0] for m in ensemble.members], 1))
    torch.testing.assert_close(distribution.epistemic(), distribution.means.var(1, unbiased=False))
    torch.testing.assert_close(distribution.variance(), distribution.aleatoric() + distribution.epistemic())


def test_slurp_side_learner_learns_which_inputs_the_frozen_model_gets_wrong() -> None:
    """The main model predicts 0 everywhere; the target's noise grows with x, so |error| does too."""
    torch.manual_seed(0)
    main = GaussianRegressor(MLP((1,), num_classes=2, hidden_sizes=(16,)), 2, adam)
    torch.nn.init.zeros_(main.backbone.head.weight)
    torch.nn.init.zeros_(main.backbone.head.bias)
    before = [p.clone() for p in main.parameters()]
    x = torch.rand(600, 1) * 2 - 1
    y = torch.randn(600) * (x[:, 0] + 1.2)
    slurp = Slurp(main, SideSettings(epochs=30, lr=1e-2), target_span=float(y.max() - y.min()))
    slurp.fit(x, y, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(before, main.parameters(), strict=True))  # main stays frozen
    grid = torch.linspace(-1, 1, 5)[:, None]
    uncertainty = slurp.predict(grid).uncertainty
    assert bool((uncertainty[1:] > uncertainty[:-1]).all())
    expected_error = (grid[:, 0] + 1.2) * math.sqrt(2 / math.pi)  # E|N(0, s²)| = s √(2/π)
    torch.testing.assert_close(uncertainty, expected_error, atol=0.35, rtol=0.3)


def test_rotation_by_90_degrees_is_a_counter_clockwise_quarter_turn() -> None:
    images = torch.rand(2, 1, 28, 28)
    turned = rotate(images, torch.tensor([90.0, -90.0]))
    torch.testing.assert_close(turned[0], torch.rot90(images[0], 1, (1, 2)), atol=1e-5, rtol=0)
    torch.testing.assert_close(turned[1], torch.rot90(images[1], -1, (1, 2)), atol=1e-5, rtol=0)


def test_dense_heads_score_every_pixel_as_a_row_in_flatten_order() -> None:
    torch.manual_seed(0)
    x, y = torch.rand(3, 1, 8, 8), torch.randn(3, 8, 8)
    gaussian = GaussianRegressor(EncoderDecoder((1, 8, 8), num_classes=2, width=4), 2, adam)
    outputs = gaussian.backbone(x)
    prediction = gaussian.predict(x)
    torch.testing.assert_close(prediction.distribution.mean(), outputs[:, 0].flatten())
    expected = F.gaussian_nll_loss(outputs[:, 0].flatten(), y.flatten(), outputs[:, 1].flatten().exp())
    assert float(gaussian.training_loss(x, y)) == pytest.approx(float(expected), rel=1e-5)
    car = ClassificationAsRegression(EncoderDecoder((1, 8, 8), num_classes=4, width=4), 4, adam, bins=4)
    probs = car.backbone(x).softmax(1)
    torch.testing.assert_close(car.predict(x).distribution.probs[5], probs[0, :, 0, 5])  # pixel (0, 0, 5)
    slurp = Slurp(gaussian, SideSettings(epochs=1), target_span=float(y.max() - y.min()))
    slurp.fit(x, y, seed=0)
    assert slurp.predict(x).uncertainty.shape == (3 * 8 * 8,)
