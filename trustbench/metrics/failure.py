"""Failure (misclassification) detection: how well an uncertainty score flags a classifier's own errors.

Hendrycks & Gimpel ("A Baseline for Detecting Misclassified and Out-of-Distribution Examples", ICLR 2017)
score the errors of a classifier as a detection task. The convention here is torch-uncertainty's for its
detection metrics (``BinaryAUROC``, ``BinaryAveragePrecision`` and ``FPR95(pos_label=1)`` on a score where
higher = flagged), with the **errors as the positive class** and the uncertainty as the score:

- ``auroc``: probability that an error has a higher uncertainty than a correct prediction (ties ½), as
  sklearn's ``roc_auc_score(~correct, uncertainty)``;
- ``aupr``: average precision with errors positive (Hendrycks & Gimpel's "AUPR Err"), as sklearn's
  ``average_precision_score(~correct, uncertainty)``;
- ``fpr95``: share of correct predictions flagged at the threshold that flags 95 % of the errors.

All three come from :func:`trustbench.metrics.ood.ood_metrics` with the correct predictions as its ID set
and the errors as its OOD (positive) set; NaN when every prediction is correct or every one is wrong.
"""

from __future__ import annotations

import math

from torch import Tensor

from trustbench.metrics.ood import ood_metrics
from trustbench.metrics.selective import check_uncertainty_and_correct

FAILURE_KEYS = ("auroc", "aupr", "fpr95")


def failure_detection(uncertainty: Tensor, correct: Tensor) -> dict[str, float]:
    """``auroc``, ``aupr`` and ``fpr95`` of `uncertainty` for flagging the predictions not `correct`."""
    uncertainty, correct = check_uncertainty_and_correct(uncertainty, correct)
    if bool(correct.all()) or not bool(correct.any()):
        return dict.fromkeys(FAILURE_KEYS, math.nan)
    detection = ood_metrics(uncertainty[correct], uncertainty[~correct])
    return {"auroc": detection["auroc"], "aupr": detection["aupr_out"], "fpr95": detection["fpr95"]}
