"""Failure detection against scikit-learn, on a logistic regression's errors on real German credit data."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from trustbench.data.catalog import load
from trustbench.metrics.failure import failure_detection
from trustbench.metrics.ood import entropy_score, msp_score


@pytest.fixture(scope="module")
def german_predictions() -> tuple[torch.Tensor, torch.Tensor]:
    """Test-split probabilities of a logistic regression fitted on German credit's training split, and
    which predictions are correct (about a quarter are errors)."""
    german = load("german", Path(tempfile.mkdtemp(prefix="trustbench-failure-")))
    model = LogisticRegression(max_iter=2000).fit(german.x_train.numpy(), german.y_train.numpy())
    probs = torch.from_numpy(model.predict_proba(german.x_test.numpy()))
    return probs, probs.argmax(dim=1) == german.y_test


def sklearn_fpr95(errors: np.ndarray, uncertainty: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(errors, uncertainty, drop_intermediate=False)
    return float(fpr[np.argmax(tpr >= 0.95)])


@pytest.mark.parametrize("score", [msp_score, entropy_score])
def test_errors_positive_matches_sklearn(german_predictions, score) -> None:
    probs, correct = german_predictions
    uncertainty = score(probs)
    errors = (~correct).numpy()
    assert 0.1 < errors.mean() < 0.5
    result = failure_detection(uncertainty, correct)
    # torchmetrics sums the areas in float32: agreement to ~1e-8
    assert result["auroc"] == pytest.approx(roc_auc_score(errors, uncertainty.numpy()), abs=1e-6)
    assert result["aupr"] == pytest.approx(average_precision_score(errors, uncertainty.numpy()), abs=1e-6)
    assert result["fpr95"] == pytest.approx(sklearn_fpr95(errors, uncertainty.numpy()), abs=1e-12)


def test_no_errors_is_nan() -> None:
    result = failure_detection(torch.tensor([0.1, 0.2]), torch.tensor([True, True]))
    assert all(math.isnan(value) for value in result.values())
