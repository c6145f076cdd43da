"""Classification evaluation: accuracy, likelihood, calibration and OOD rejection from one score.

OOD convention (OpenOOD v1.5): the method's uncertainty is the score, higher = more OOD, and OOD is the
positive class for AUROC, AUPR-Out and FPR95 (the share of ID test points flagged at the threshold that
flags 95 % of the OOD set). AUPR-In takes ID as positive with the negated score.
"""

from __future__ import annotations

from torch import Tensor

from trustbench.evaluation.context import EvaluationContext
from trustbench.metrics.calibration import expected_calibration_error
from trustbench.metrics.classification import accuracy, brier_score, negative_log_likelihood
from trustbench.metrics.ood import ood_metrics


def evaluate_classification(context: EvaluationContext) -> dict[str, float]:
    """`cls/acc`, `cls/nll`, `cls/brier`, `cal/ece` (15 bins) on the test split, `val/acc` and `val/nll` on
    the validation split, and for each OOD set `ood/<set>/{auroc,aupr_in,aupr_out,fpr95}` from the
    method's uncertainty (the sets listed in `data.ood`)."""
    datamodule = context.datamodule
    test = context.prediction("test", datamodule.x_test)
    labels = datamodule.y_test
    metrics = {
        "cls/acc": accuracy(test.probs, labels),
        "cls/nll": negative_log_likelihood(test.probs, labels),
        "cls/brier": brier_score(test.probs, labels),
        "cal/ece": expected_calibration_error(test.probs, labels, n_bins=15),
    }
    if len(datamodule.y_val):  # what model selection and sweepers (Optuna) may optimise; test stays unseen
        val = context.prediction("val", datamodule.x_val)
        metrics["val/acc"] = accuracy(val.probs, datamodule.y_val)
        metrics["val/nll"] = negative_log_likelihood(val.probs, datamodule.y_val)
    return metrics | uncertainty_ood_metrics(context, test.uncertainty)


def uncertainty_ood_metrics(context: EvaluationContext, test_uncertainty: Tensor) -> dict[str, float]:
    """`ood/<set>/{auroc,aupr_in,aupr_out,fpr95}` of the method's uncertainty, the test split against each
    set of `data.ood` (see the module doc)."""
    metrics = {}
    for name, x_ood in context.ood_inputs(context.cfg.data.get("ood", [])).items():
        ood = context.prediction(f"ood/{name}", x_ood)
        for key, value in ood_metrics(test_uncertainty, ood.uncertainty).items():
            metrics[f"ood/{name}/{key}"] = value
    return metrics
