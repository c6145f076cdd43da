"""EIC, AIC and URC (Perez et al., UAI 2022): removal curves of a hand-made classifier, computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from trustbench.metrics.uncertainty_attribution import gaussian_blur, removal_curves


def _entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def model(x: torch.Tensor) -> torch.Tensor:
    """Two classes: logits [3·x₀, 1] from the first pixel only."""
    flat = x.flatten(1)
    return torch.stack([3 * flat[:, 0], torch.ones(len(flat))], dim=1)


def test_removing_the_pixel_the_model_relies_on_raises_its_entropy_and_costs_accuracy():
    x, y = torch.tensor([[[[1.0, 0.5, 0.5, 0.5]]]]), torch.tensor([0])
    attribution = torch.tensor([[[[0.9, 0.1, 0.2, 0.3]]]])  # pixel 0 ranked first
    curves = removal_curves(model, x, y, attribution, torch.zeros_like(x), torch.tensor([0.0, 0.25, 0.5]))
    before = _entropy(1 / (1 + math.exp(-2)))  # logits [3, 1]
    after = _entropy(1 / (1 + math.exp(1)))  # pixel 0 filled with 0: logits [0, 1], class 1 (wrong)
    assert curves.entropy.tolist() == pytest.approx([before, after, after], rel=1e-5)
    assert curves.accuracy.tolist() == [1.0, 0.0, 0.0]
    summary = curves.summary()
    # trapezoid means over shares 0..0.5: (0.125·(before + after) + 0.125·2·after) / 0.5
    assert summary["eic"] == pytest.approx((before + 3 * after) / 4, rel=1e-5)
    assert summary["aic"] == pytest.approx(0.25)
    assert summary["urc"] == pytest.approx(3 * (before - after) / before / 4, rel=1e-5)


def test_an_attribution_that_ranks_the_relied_on_pixel_last_changes_nothing_until_then():
    x, y = torch.tensor([[[[1.0, 0.5, 0.5, 0.5]]]]), torch.tensor([0])
    attribution = torch.tensor([[[[0.0, 0.1, 0.2, 0.3]]]])
    curves = removal_curves(model, x, y, attribution, torch.zeros_like(x), torch.tensor([0.0, 0.75]))
    assert curves.accuracy.tolist() == [1.0, 1.0] and curves.reduction.tolist() == pytest.approx([0.0, 0.0])


def test_blurring_keeps_a_constant_image_and_spreads_a_point_symmetrically():
    constant = torch.full((1, 1, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(constant, 1.0), constant)
    point = torch.zeros(1, 1, 15, 15)
    point[0, 0, 7, 7] = 1.0
    blurred = gaussian_blur(point, 1.0)[0, 0]
    torch.testing.assert_close(blurred, blurred.T)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5) and blurred.argmax().item() == 7 * 15 + 7


def test_mismatched_shapes_and_shares_outside_zero_to_one_are_refused():
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="shaped like the images"):
        removal_curves(model, x, torch.tensor([0]), torch.zeros(1, 4), x, torch.tensor([0.0]))
    with pytest.raises(ValueError, match=r"shares in \[0, 1\]"):
        removal_curves(model, x, torch.tensor([0]), x, x, torch.tensor([1.5]))
