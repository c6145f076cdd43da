"""Weighted metrics of the stress suite: uniform weights give the project's unweighted metrics (accuracy,
torchmetrics' ECE, fairness_report's DI/SPD/EOD), integer weights give them on the sample with rows
repeated, and undefined rates stay NaN. Labels and groups are real Adult test rows."""

from __future__ import annotations

import math

import pytest
import torch
from real_data import real

from trustbench.data.arrays import ArrayDataset
from trustbench.metrics.calibration import expected_calibration_error
from trustbench.metrics.classification import accuracy
from trustbench.metrics.fairness import fairness_report
from trustbench.metrics.stress import row_quantities, weighted_metrics

ROWS = 3000


@pytest.fixture(scope="module")
def adult() -> ArrayDataset:
    return real("adult")


@pytest.fixture(scope="module")
def predictions(adult: ArrayDataset) -> dict[str, torch.Tensor]:
    """Probabilities that depend on the label and sex as a biased classifier's would, for real Adult rows."""
    generator = torch.Generator().manual_seed(0)
    labels, sex = adult.y_test[:ROWS], adult.groups_test["sex"][:ROWS]
    logit = 2.0 * labels + 0.8 * sex - 1.5 + torch.randn(ROWS, generator=generator)
    p1 = torch.sigmoid(logit)
    return {
        "probs": torch.stack([1 - p1, p1], dim=1).float(),
        "uncertainty": torch.rand(ROWS, generator=generator),
        "labels": labels,
        "groups": {name: group[:ROWS] for name, group in adult.groups_test.items()},
    }


def unweighted(probs, uncertainty, labels, groups) -> dict[str, float]:
    """The project's own metrics on the same predictions, under the stress suite's names."""
    predicted = probs.argmax(dim=1)
    report = fairness_report(labels, predicted, probs[:, 1], groups)
    values = {
        "acc": accuracy(probs, labels),
        "ece": expected_calibration_error(probs, labels),
        "uncertainty": float(uncertainty.double().mean()),
        "mean_prob": float(probs[:, 1].double().mean()),
        "pos_rate": float(predicted.double().mean()),
    }
    for attribute in groups:
        for metric in ("di", "spd", "eod"):
            values[f"{metric}_{attribute}"] = report[f"fair/{attribute}/{metric}"]
    return values


def test_uniform_weights_give_the_unweighted_metrics(predictions: dict[str, torch.Tensor]) -> None:
    rows = row_quantities(**predictions)
    ours = {name: float(value) for name, value in weighted_metrics(torch.ones(ROWS), rows).items()}
    expected = unweighted(**predictions)
    assert set(ours) == set(expected) == set(rows.metric_names())
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-6 if name == "ece" else 1e-12), name  # ECE: float32


def test_integer_weights_give_the_metrics_of_the_repeated_sample(
    predictions: dict[str, torch.Tensor],
) -> None:
    counts = torch.randint(0, 5, (ROWS,), generator=torch.Generator().manual_seed(1))
    repeat = torch.arange(ROWS).repeat_interleave(counts)
    repeated = {
        "probs": predictions["probs"][repeat],
        "uncertainty": predictions["uncertainty"][repeat],
        "labels": predictions["labels"][repeat],
        "groups": {name: group[repeat] for name, group in predictions["groups"].items()},
    }
    ours = weighted_metrics(counts.double(), row_quantities(**predictions))
    for name, value in unweighted(**repeated).items():
        assert float(ours[name]) == pytest.approx(value, abs=1e-6 if name == "ece" else 1e-12), name


def test_many_weight_vectors_are_scored_at_once(predictions: dict[str, torch.Tensor]) -> None:
    rows = row_quantities(**predictions)
    weights = torch.rand(3, 4, ROWS, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    batched = weighted_metrics(weights, rows)
    single = weighted_metrics(weights[2, 1], rows)
    assert batched["eod_sex"].shape == (3, 4)
    for name in rows.metric_names():
        assert float(batched[name][2, 1]) == pytest.approx(float(single[name]), rel=1e-12), name


def test_a_group_without_weight_has_nan_rates_and_a_zero_privileged_rate_gives_infinite_di() -> None:
    labels = torch.tensor([1, 0, 1, 0, 1, 0])
    sex = torch.tensor([0, 0, 0, 1, 1, 1])
    probs = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3], [0.8, 0.2], [0.9, 0.1]])
    rows = row_quantities(probs, torch.zeros(6), labels, {"sex": sex})
    only_women = weighted_metrics(torch.tensor([1.0, 1, 1, 0, 0, 0]), rows)
    assert math.isnan(only_women["di_sex"]) and math.isnan(only_women["eod_sex"])
    assert math.isnan(only_women["spd_sex"])
    everyone = weighted_metrics(torch.ones(6), rows)
    assert everyone["di_sex"] == math.inf  # women selected 2/3, men 0
    assert float(everyone["spd_sex"]) == pytest.approx(2 / 3)


def test_a_multiclass_task_reports_each_class_mean_probability_and_no_fairness() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    labels = torch.tensor([0, 2, 2])
    rows = row_quantities(probs, torch.zeros(3), labels, {"sex": torch.tensor([0, 1, 1])})
    metrics = weighted_metrics(torch.tensor([2.0, 1.0, 1.0]), rows)
    assert rows.metric_names() == ("acc", "ece", "uncertainty", "mean_prob_0", "mean_prob_1", "mean_prob_2")
    assert float(metrics["acc"]) == pytest.approx(0.75)
    assert float(metrics["mean_prob_0"]) == pytest.approx((2 * 0.7 + 0.1 + 0.2) / 4)
