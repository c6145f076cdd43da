"""Fairness evaluation: every group metric of :func:`fairness_report` on the test split, and a bar plot.

Runs for any method on data that names protected groups (the data config lists it in ``suites``), so a
debiasing method and its ERM baseline are scored by the same code on the same predictions. Hard
predictions are the argmax class (threshold 0.5 on P(Y = 1 | x)), scores are P(Y = 1 | x). Keys are
``fair/<attribute>/<metric>``, per group ``fair/<attribute>/<g>/<rate>``, and for the intersection of all
attributes ``fair/<a1>x<a2>/...`` (see :mod:`trustbench.metrics.fairness`).

``fair/constant_predictor`` is 1.0 when the model predicts one class for every test point, else 0.0. A
constant predictor has no disparity to measure: its selection rate is 0 or 1 in every group, so DI, SPD,
DPD and the TPR/FPR gaps come out perfect (or undefined) whatever the data, and a warning line says so.

Plot in ``<run_dir>/plots/fairness_groups.png`` (also logged to W&B): accuracy, TPR, FPR and selection
rate per group of every attribute and of their intersection.
"""

from __future__ import annotations

import logging

from torch import Tensor

from trustbench.evaluation.context import EvaluationContext
from trustbench.metrics.fairness import fairness_report
from trustbench.plots.fairness import group_rate_bars

log = logging.getLogger("trustbench")


def evaluate_fairness(context: EvaluationContext) -> dict[str, float]:
    """The metrics and plot of the module docstring; a dataset without groups is refused."""
    datamodule = context.datamodule
    groups = datamodule.groups_test
    if not groups:
        raise ValueError(
            f"the fairness suite needs protected groups, but {context.dataset.name} has none; remove "
            "'fairness' from data.suites or use adult, compas, german, celeba or mnist_semi_random"
        )
    test = context.prediction("test", datamodule.x_test)
    y_pred = test.probs.argmax(dim=1)
    report = fairness_report(datamodule.y_test, y_pred, test.probs[:, 1], groups)
    report["fair/constant_predictor"] = _constant_predictor_flag(y_pred, context.dataset.class_names)
    title = f"{context.cfg.data.name} · {context.cfg.method.name}"
    path = context.run_dir / "plots" / "fairness_groups.png"
    context.draw(lambda: {"fair/groups": group_rate_bars(report, path, title=title)})
    return report


def _constant_predictor_flag(y_pred: Tensor, class_names: tuple[str, ...] | None) -> float:
    """1.0, with a warning, when every prediction is one class; 0.0 otherwise."""
    classes = y_pred.unique()
    if len(classes) != 1:
        return 0.0
    label = int(classes[0])
    name = class_names[label] if class_names else str(label)
    log.warning(
        "fairness: the model predicts class %d (%s) for all %d test points; a constant predictor's fairness "
        "numbers are trivially perfect or undefined and say nothing about the data "
        "(fair/constant_predictor = 1). Train for more steps (smaller data.batch_size, more epochs) or "
        "with another learning rate.",
        label, name, len(y_pred),
    )  # fmt: skip
    return 1.0
