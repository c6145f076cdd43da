"""Confident errors: the rates by hand, the AUROC against scikit-learn, the describing tree on real German
credit rows, and the suite through `trustbench run` on German credit."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import result, trustbench
from sklearn.metrics import roc_auc_score

from trustbench.data.catalog import load
from trustbench.evaluation.subgroup_tree import describe_group
from trustbench.metrics.confident_errors import (
    check_thresholds,
    confident_error_auroc,
    confident_error_rates,
    top_confidence,
)

# Six predictions: confidences and whether each is right.
CONFIDENCE = torch.tensor([0.95, 0.92, 0.85, 0.7, 0.99, 0.6], dtype=torch.float64)
CORRECT = torch.tensor([False, True, False, True, True, False])


def test_rate_and_share_by_hand() -> None:
    # Errors at 0.95, 0.85, 0.6. At tau 0.9: one confident error (0.95) of 6 predictions, of 3 errors.
    assert confident_error_rates(CONFIDENCE, CORRECT, 0.9) == {"rate": 1 / 6, "share": 1 / 3}
    assert confident_error_rates(CONFIDENCE, CORRECT, 0.6) == {"rate": 3 / 6, "share": 1.0}
    assert math.isnan(confident_error_rates(CONFIDENCE, torch.ones(6, dtype=torch.bool), 0.9)["share"])


def test_auroc_is_over_the_confident_predictions_only() -> None:
    uncertainty = torch.tensor([0.3, 0.1, 0.9, 0.8, 0.2, 0.05], dtype=torch.float64)
    confident = CONFIDENCE >= 0.8  # rows 0, 1, 2, 4; errors 0 and 2
    expected = roc_auc_score((~CORRECT[confident]).numpy(), uncertainty[confident].numpy())
    assert confident_error_auroc(uncertainty, CONFIDENCE, CORRECT, 0.8) == pytest.approx(expected, abs=1e-6)
    assert math.isnan(confident_error_auroc(uncertainty, CONFIDENCE, CORRECT, 1.0))


def test_top_confidence_and_threshold_checks() -> None:
    assert top_confidence(torch.tensor([[0.2, 0.8], [0.6, 0.4]])).tolist() == pytest.approx([0.8, 0.6])
    with pytest.raises(ValueError, match=r"values in \(0, 1\], got \[0.9, 1.5\]"):
        check_thresholds([0.9, 1.5])


def test_tree_recovers_a_planted_age_rule_in_years() -> None:
    german = load("german", Path(tempfile.mkdtemp(prefix="trustbench-ce-")))
    meta = german.tabular
    low, high = meta.ranges["age"]
    age = low + german.x_test[:, meta.feature_names.index("age")].double() * (high - low)
    planted = (age.round() < 26).numpy()
    description = describe_group(german.x_test, meta, planted, depth=1, seed=0)
    assert np.array_equal(description.flagged, planted)
    assert "age <= 25.50" in description.rules


def test_suite_runs_on_german_credit(tmp_path: Path) -> None:
    trustbench(
        "run",
        "data=german",
        "method=erm",
        "trainer.max_epochs=2",
        "data.suites=[confident_errors]",
        "+data.confident_errors={tau: 0.7}",
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    record = result(tmp_path / "run")
    metrics = record["metrics"]
    assert record["status"] == "ok", record["error"]
    assert 0 <= metrics["ce/0.9/rate"] <= metrics["ce/0.6/rate"] <= 1 - metrics["cls/acc"] + 1e-12
    assert {"ce/auroc/uncertainty", "ce/auroc/msp", "fail/entropy/aupr", "ce/tree/recall"} <= set(metrics)
    assert {"ce/sex/0/rate", "ce/sex/1/flagged", "ce/age/0/rate"} <= set(metrics)
    tree = (tmp_path / "run" / "confident_errors_tree.txt").read_text()
    assert tree.startswith("confident errors (wrong with confidence >= 0.7)") and "|---" in tree
