"""The default recipe of each tabular dataset (`trustbench run data=NAME`: ERM, the data config's batch size,
3 epochs) learns more than the majority class, and the fairness suite flags a constant predictor."""

from __future__ import annotations

import logging

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from trustbench.app import CONFIG_DIR
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.fairness import evaluate_fairness
from trustbench.experiment import fit

TABULAR = ("adult", "compas", "german")
MARGIN = 0.04
"""A constant predictor scores exactly the majority rate. 0.04 exceeds the binomial standard error of an
accuracy near the majority rate on the smallest test split, German's 200 rows (√(0.675 · 0.325 / 200) =
0.033), so a pass is not a handful of lucky rows. Measured margins of the default recipes (seed 0): German
0.075, COMPAS 0.120, Adult 0.078."""


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EvaluationContext]:
    """Each tabular dataset's default recipe trained once, in this process (no loggers), ready to evaluate."""
    outputs = tmp_path_factory.mktemp("recipes")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count the data configs' measurements were made with
    runs = {}
    try:
        for name in TABULAR:
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                cfg = compose("config", overrides=[f"data={name}", f"paths.output_dir={outputs}"])
            with open_dict(cfg):
                cfg.logger = {}  # the CSV logger needs a Hydra job; nothing here reads training curves
            run_dir = outputs / name
            fitted = fit(cfg, run_dir)
            runs[name] = EvaluationContext(cfg, fitted.module, fitted.datamodule, fitted.dataset, run_dir)
    finally:
        torch.set_num_threads(threads)
    return runs


@pytest.mark.parametrize("name", TABULAR)
def test_the_default_recipe_beats_the_majority_class_clearly(default_runs, name: str) -> None:
    context = default_runs[name]
    y_test = context.datamodule.y_test
    predicted = context.prediction("test", context.datamodule.x_test).probs.argmax(dim=1)
    majority_rate = max(float(y_test.float().mean()), 1 - float(y_test.float().mean()))
    accuracy = float((predicted == y_test).float().mean())
    assert accuracy >= majority_rate + MARGIN, f"accuracy {accuracy:.3f}, majority rate {majority_rate:.3f}"


def test_a_model_predicting_both_classes_is_not_flagged(default_runs, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="trustbench"):
        report = evaluate_fairness(default_runs["german"])
    assert report["fair/constant_predictor"] == 0.0
    assert "constant predictor" not in caplog.text


def test_a_constant_predictor_is_flagged_and_warned_about(default_runs, caplog) -> None:
    trained = default_runs["german"]
    head = trained.module.backbone.head
    saved = {key: value.clone() for key, value in head.state_dict().items()}
    try:
        with torch.no_grad():  # every applicant "good credit", as German's old default recipe did
            head.weight.zero_()
            head.bias.copy_(torch.tensor([0.0, 1.0]))
        context = EvaluationContext(
            trained.cfg, trained.module, trained.datamodule, trained.dataset, trained.run_dir / "constant"
        )
        with caplog.at_level(logging.WARNING, logger="trustbench"):
            report = evaluate_fairness(context)
    finally:
        head.load_state_dict(saved)
    assert report["fair/constant_predictor"] == 1.0
    assert "predicts class 1 (good credit) for all 200 test points" in caplog.text
    # what the flag warns about: every group is selected at rate 1, so parity looks perfect
    assert report["fair/age/di"] == 1.0 and report["fair/age/spd"] == 0.0 and report["fair/sex/dpd"] == 0.0
