"""Uncertainty evaluation: classification, calibration, selective prediction, and behaviour under shift.

The protocol of Postels et al., "On the Practicality of Deterministic Epistemic Uncertainty", ICML 2022:
besides in-distribution calibration and OOD detection, a method's uncertainty should keep tracking its
errors as the inputs drift away from the training distribution, corruption by corruption and severity by
severity.

On the test split: everything :func:`evaluate_classification` reports, plus ``cal/aece`` and ``cal/mce``
(15 bins), ``sc/aurc``, and failure detection: ``fail/<score>/{auroc,aupr,fpr95}`` of each uncertainty
score for flagging the test split's errors, errors positive (:mod:`trustbench.metrics.failure`), for
``<score>`` = ``uncertainty`` (the method's own), ``msp`` (−max_k p_k) and ``entropy`` (of the predictive
distribution, nats). When ``data.shift`` is set, e.g.
``shift: {corruptions: [gaussian_noise, rotation, gaussian_blur, contrast], severities: [1, 2, 3, 4, 5]}``
(severities default to 1..5), every corruption of :data:`trustbench.data.shifts.CORRUPTIONS` is applied to
the RAW test images at every severity, seeded by ``cfg.seed``, and normalised as the model's inputs; then

- ``shift/<corruption>/<s>/acc``: accuracy; ``/ece``: top-label ECE, 15 bins;
- ``/auroc_err``: AUROC of the uncertainty for flagging errors (incorrect positive), 0.5 = chance;
- ``/spearman``: Spearman correlation of mean uncertainty and accuracy over 10 equal-mass uncertainty
  bins, −1 = best (:func:`~trustbench.metrics.shift.uncertainty_accuracy_spearman`);
- ``shift/mean/<s>/<metric>``: the mean over the corruptions (NaN if one of them is NaN).

Plots in ``<run_dir>/plots``, also logged to W&B: ``reliability.png`` (test split), ``shift_accuracy.png``
and ``shift_ece.png`` (one line per corruption and their mean; severity 0 is the clean test split), and
``uncertainty_hist.png`` (the uncertainty on the ID test split and on each set of ``data.ood``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from trustbench.data.shifts import SEVERITIES, check_corruption, corrupt
from trustbench.errors import ConfigError
from trustbench.evaluation.classification import evaluate_classification
from trustbench.evaluation.context import EvaluationContext, predict_all
from trustbench.methods.base import Prediction
from trustbench.metrics.calibration import (
    adaptive_calibration_error,
    expected_calibration_error,
    maximum_calibration_error,
)
from trustbench.metrics.classification import accuracy
from trustbench.metrics.failure import failure_detection
from trustbench.metrics.ood import entropy_score, msp_score
from trustbench.metrics.selective import aurc
from trustbench.metrics.shift import correct_vs_incorrect_auroc, uncertainty_accuracy_spearman
from trustbench.plots.calibration import metric_vs_severity, reliability_diagram
from trustbench.plots.ood import score_histograms

CALIBRATION_BINS = 15
SPEARMAN_BINS = 10
SHIFT_METRICS = ("acc", "ece", "auroc_err", "spearman")
MEAN = "mean"

ShiftTable = dict[str, dict[int, dict[str, float]]]
"""table[corruption][severity][metric] = value."""


def evaluate_uncertainty(context: EvaluationContext) -> dict[str, float]:
    """The metrics and plots of the module docstring."""
    cfg, datamodule = context.cfg, context.datamodule
    shift = _shift_plan(context)
    metrics = evaluate_classification(context)
    test = context.prediction("test", datamodule.x_test)
    labels = datamodule.y_test
    metrics["cal/aece"] = adaptive_calibration_error(test.probs, labels, n_bins=CALIBRATION_BINS)
    metrics["cal/mce"] = maximum_calibration_error(test.probs, labels, n_bins=CALIBRATION_BINS)
    correct = test.probs.argmax(dim=1) == labels
    metrics["sc/aurc"] = aurc(test.uncertainty, correct)
    for score, values in failure_scores(test).items():
        for key, value in failure_detection(values, correct).items():
            metrics[f"fail/{score}/{key}"] = value

    table = shift_table(context, *shift) if shift is not None else None
    if table is not None:
        metrics.update(_flatten(table))

    def figures() -> dict[str, Path]:
        plots = context.run_dir / "plots"
        title = f"{cfg.method.name} · {cfg.backbone.name} · {cfg.data.name}"
        images = {
            "cal/reliability": reliability_diagram(test.probs, labels, plots / "reliability.png", title=title)
        }
        if table is not None:
            images.update(_plot_shift(table, _scores(test, labels), plots, title))
        ood_names = list(cfg.data.get("ood", []))
        if ood_names:
            ood = {
                name: context.prediction(f"ood/{name}", x_ood).uncertainty
                for name, x_ood in context.ood_inputs(ood_names).items()
            }
            path = plots / "uncertainty_hist.png"
            images["ood/uncertainty_hist"] = score_histograms(test.uncertainty, ood, path, title=title)
        return images

    context.draw(figures)
    return metrics


def failure_scores(prediction: Prediction) -> dict[str, torch.Tensor]:
    """The uncertainty scores failure detection ranks: the method's own, MSP's and the entropy."""
    return {
        "uncertainty": prediction.uncertainty,
        "msp": msp_score(prediction.probs),
        "entropy": entropy_score(prediction.probs),
    }


def shift_table(
    context: EvaluationContext, corruptions: Sequence[str], severities: Sequence[int]
) -> ShiftTable:
    """:data:`SHIFT_METRICS` of the test split under each corruption and severity, and under ``"mean"`` their
    mean over the corruptions at each severity."""
    datamodule = context.datamodule
    raw_test = context.dataset.x_test
    table: ShiftTable = {}
    for name in corruptions:
        table[name] = {}
        for severity in severities:
            shifted = datamodule.normalize_inputs(corrupt(raw_test, name, severity, seed=context.cfg.seed))
            prediction = predict_all(context.module, shifted, datamodule.eval_batch_size)
            table[name][severity] = _scores(prediction, datamodule.y_test)
    table[MEAN] = {
        severity: {
            key: sum(table[name][severity][key] for name in corruptions) / len(corruptions)
            for key in SHIFT_METRICS
        }
        for severity in severities
    }
    return table


def _scores(prediction: Prediction, labels: torch.Tensor) -> dict[str, float]:
    correct = prediction.probs.argmax(dim=1) == labels
    return {
        "acc": accuracy(prediction.probs, labels),
        "ece": expected_calibration_error(prediction.probs, labels, n_bins=CALIBRATION_BINS),
        "auroc_err": correct_vs_incorrect_auroc(prediction.uncertainty, correct),
        "spearman": uncertainty_accuracy_spearman(prediction.uncertainty, correct, n_bins=SPEARMAN_BINS),
    }


def _shift_plan(context: EvaluationContext) -> tuple[list[str], list[int]] | None:
    """The corruptions and severities of ``data.shift``, checked before any work; None when unset."""
    shift = context.cfg.data.get("shift")
    if not shift:
        return None
    if context.dataset.kind != "image":
        raise ConfigError(
            f"data.shift corrupts images, but {context.dataset.name!r} is {context.dataset.kind} data; "
            "remove data.shift or evaluate on an image dataset"
        )
    corruptions = list(shift.get("corruptions") or [])
    severities = list(shift.get("severities") or SEVERITIES)
    if not corruptions:
        raise ConfigError(
            "data.shift needs a non-empty list corruptions, e.g. "
            "shift: {corruptions: [gaussian_noise, rotation], severities: [1, 2, 3, 4, 5]}"
        )
    for name in corruptions:
        for severity in severities:
            try:
                check_corruption(name, severity)
            except ValueError as error:
                raise ConfigError(f"data.shift: {error}") from error
    if len(set(corruptions)) < len(corruptions) or len(set(severities)) < len(severities):
        raise ConfigError(
            f"data.shift lists a corruption or severity twice: corruptions {corruptions}, severities "
            f"{severities}; list each once"
        )
    return corruptions, severities


def _flatten(table: ShiftTable) -> dict[str, float]:
    return {
        f"shift/{name}/{severity}/{key}": value
        for name, by_severity in table.items()
        for severity, scores in by_severity.items()
        for key, value in scores.items()
    }


def _plot_shift(table: ShiftTable, clean: dict[str, float], plots: Path, title: str) -> dict[str, Path]:
    """Accuracy and ECE against severity, one line per corruption and the mean, severity 0 = clean test."""
    images = {}
    for key, label, file in (("acc", "accuracy", "shift_accuracy.png"), ("ece", "ECE", "shift_ece.png")):
        lines = {
            name: {0: clean[key], **{severity: scores[key] for severity, scores in by_severity.items()}}
            for name, by_severity in table.items()
        }
        images[f"shift/{key}"] = metric_vs_severity(lines, label, plots / file, title=f"{label} · {title}")
    return images
