"""Open-set recognition metrics: how well a classifier with a reject option serves known and unknown inputs.

OSCR, the open-set classification rate (Dhamija, Günther & Boult, "Reducing Network Agnostophobia",
NeurIPS 2018), is the area under the curve of the correct-classification rate against the false-positive
rate as the rejection threshold t moves. With an OOD score s (higher = more OOD, the detector convention)
an input is accepted when s <= t:

- CCR(t) = |{known x : argmax prediction = label and s(x) <= t}| / |known|,
- FPR(t) = |{unknown x : s(x) <= t}| / |unknown|.

The curve runs from (0, 0) (every input rejected) through one point per distinct score value, inputs with
equal scores being accepted together, to (1, closed-set accuracy); the area is the trapezoid rule over those
points, so OSCR <= closed-set accuracy and an ideal detector on a perfect classifier scores 1. **Departure**:
Vaze et al.'s ``compute_oscr`` (used by ARPL and OpenOOD's OSR code) closes the curve at (1, 1) and
offsets correct knowns by one rank, which adds up to (1 − accuracy) / 2 and a 1/N-sized shift; this is
the definition as the paper states it.
"""

from __future__ import annotations

import torch
from torch import Tensor


def oscr(score_known: Tensor, correct: Tensor, score_unknown: Tensor) -> float:
    """Area under CCR vs FPR (module doc) from OOD scores of known and unknown inputs.

    `correct` (bool, aligned with `score_known`) says which known inputs the classifier labels correctly.
    """
    if score_known.ndim != 1 or correct.shape != score_known.shape or score_unknown.ndim != 1:
        raise ValueError(
            "oscr needs 1-D score_known and score_unknown and a bool `correct` shaped like score_known; got "
            f"{tuple(score_known.shape)}, {tuple(correct.shape)} and {tuple(score_unknown.shape)}"
        )
    if not len(score_known) or not len(score_unknown):
        raise ValueError("oscr needs at least one known and one unknown input")
    scores = torch.cat([score_known, score_unknown]).to(torch.float64)
    hits = torch.cat([correct.to(torch.float64), torch.zeros(len(score_unknown), dtype=torch.float64)])
    unknown = torch.cat([torch.zeros(len(score_known)), torch.ones(len(score_unknown))]).to(torch.float64)
    distinct, group = torch.unique(scores, return_inverse=True)  # ascending: a threshold per distinct score
    ccr = torch.zeros(len(distinct) + 1, dtype=torch.float64)
    fpr = torch.zeros(len(distinct) + 1, dtype=torch.float64)
    ccr[1:] = torch.zeros(len(distinct), dtype=torch.float64).index_add_(0, group, hits).cumsum(0)
    fpr[1:] = torch.zeros(len(distinct), dtype=torch.float64).index_add_(0, group, unknown).cumsum(0)
    ccr, fpr = ccr / len(score_known), fpr / len(score_unknown)
    return float(torch.trapezoid(ccr, fpr))
