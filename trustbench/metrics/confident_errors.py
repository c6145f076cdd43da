"""Confident errors ("unknown unknowns"): predictions a classifier makes with high confidence and gets wrong.

Galici, Käser, Fenu & Marras (unknown unknowns in student success prediction, LAK 2023, arXiv 2212.08532)
call a prediction an unknown unknown when it is wrong although its confidence, here the top-class
probability max_k p_k, is at least a threshold τ. For a test split:

- ``rate``: share of all predictions that are confident errors, |{wrong, conf ≥ τ}| / N;
- ``share``: share of the errors that are confident, |{wrong, conf ≥ τ}| / |{wrong}| (NaN without errors);
- ``auroc``: among the confident predictions only, the AUROC of an uncertainty score for the confident
  errors (positive) against the confident correct predictions: can a second opinion (an ensemble's
  disagreement, a density) catch what the confidence misses? (:func:`trustbench.metrics.failure
  .failure_detection` on that subset; NaN when it holds no error or no correct prediction.)

**Departure**: the paper's code is not available (its repository is gone) and only the abstract could be
read; the confidence threshold and these three summaries are this module's reading of "predicted with high
confidence and wrong", not the paper's exact protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from trustbench.metrics.failure import failure_detection


def check_thresholds(thresholds: Sequence[float], what: str = "confidence thresholds") -> list[float]:
    """`thresholds` as floats, or ValueError (naming them `what`) unless each τ is in (0, 1]."""
    taus = [float(tau) for tau in thresholds]
    if not taus or not all(0 < tau <= 1 for tau in taus):
        raise ValueError(f"{what} must be a non-empty list of values in (0, 1], got {taus}")
    return taus


def confident_errors(confidence: Tensor, correct: Tensor, tau: float) -> Tensor:
    """Bool mask of the predictions that are wrong with confidence >= `tau`."""
    return ~correct & (confidence >= tau)


def confident_error_rates(confidence: Tensor, correct: Tensor, tau: float) -> dict[str, float]:
    """``rate`` and ``share`` of the confident errors at threshold `tau` (module doc)."""
    flagged = confident_errors(confidence, correct, tau)
    errors = int((~correct).sum())
    return {
        "rate": float(flagged.double().mean()),
        "share": float(flagged.sum()) / errors if errors else math.nan,
    }


def confident_error_auroc(uncertainty: Tensor, confidence: Tensor, correct: Tensor, tau: float) -> float:
    """AUROC of `uncertainty` for the confident errors among the predictions with confidence >= `tau`."""
    confident = confidence >= tau
    if not bool(confident.any()):
        return math.nan
    return failure_detection(uncertainty[confident], correct[confident])["auroc"]


def top_confidence(probs: Tensor) -> Tensor:
    """max_k p_k of each row, in float64."""
    return probs.to(torch.float64).amax(dim=1)
