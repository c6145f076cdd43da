"""How well an uncertainty score tracks a classifier's errors, as measured under distribution shift.

Both metrics follow Postels et al., "On the Practicality of Deterministic Epistemic Uncertainty", ICML 2022
(``evaluation_lib/evaluate_utils.py`` of their code), who compute them on every corruption severity:
the rank correlation between uncertainty and accuracy, and the AUROC of the uncertainty for telling
correct from incorrect predictions. ``uncertainty`` is higher for less trusted predictions and ``correct``
is a bool tensor such as ``probs.argmax(1) == labels``.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import spearmanr
from torch import Tensor

from trustbench.metrics.failure import failure_detection
from trustbench.metrics.selective import check_uncertainty_and_correct


def equal_mass_bin_index(values: Tensor, n_bins: int) -> Tensor:
    """The bin 0..n_bins−1 of each value when the sorted values are cut into ``n_bins`` equal-count blocks.

    The sorted positions form consecutive blocks, the first N mod n_bins of size ⌈N/n_bins⌉ and the rest of
    size ⌊N/n_bins⌋ (``np.array_split``). A value goes to the block of the first sorted position holding
    it, so equal values share a bin and a tie group crossing a cut joins the lower block whole, which can
    leave later blocks empty. This is the binning of ``metrics.calibration.adaptive_calibration_error``.
    """
    block_sizes = torch.full((n_bins,), values.numel() // n_bins)
    block_sizes[: values.numel() % n_bins] += 1
    block_of_position = torch.repeat_interleave(torch.arange(n_bins), block_sizes)
    return block_of_position[torch.searchsorted(torch.sort(values).values, values)]


def uncertainty_accuracy_spearman(uncertainty: Tensor, correct: Tensor, n_bins: int = 10) -> float:
    """Spearman rank correlation between mean uncertainty and accuracy over equal-mass uncertainty bins.

    The samples are cut into ``n_bins`` bins of (nearly) equal count by uncertainty quantile
    (:func:`equal_mass_bin_index`; ties share a bin, empty bins are dropped). For each bin take the mean
    uncertainty and the accuracy (share of ``correct``); the result is ``scipy.stats.spearmanr`` between the
    two per-bin lists, ties in accuracy given their average rank. In [−1, 1]; **−1 is best**: accuracy
    falls every time uncertainty rises. 0 means the uncertainty says nothing about accuracy; +1 means it is
    inverted. NaN when undefined: fewer than two non-empty bins, or the same accuracy in every bin (for
    instance no errors at all).

    Postels et al. correlate *certainty* (−uncertainty) with accuracy over 1000 randomly placed windows of
    100 neighbouring samples, so their best value is +1; here the bins are deterministic and the sign is
    theirs negated.
    """
    uncertainty, correct = check_uncertainty_and_correct(uncertainty, correct)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2 (10 is the usual choice); got {n_bins!r}.")
    bin_index = equal_mass_bin_index(uncertainty, n_bins)
    count = torch.bincount(bin_index, minlength=n_bins)
    filled = count > 0
    denominator = count[filled].to(torch.float64)
    mean_uncertainty = torch.bincount(bin_index, weights=uncertainty, minlength=n_bins)[filled] / denominator
    accuracy = (
        torch.bincount(bin_index, weights=correct.to(torch.float64), minlength=n_bins)[filled] / denominator
    )
    if int(filled.sum()) < 2 or bool((accuracy == accuracy[0]).all()):
        return math.nan
    return float(spearmanr(mean_uncertainty.numpy(), accuracy.numpy()).statistic)


def correct_vs_incorrect_auroc(uncertainty: Tensor, correct: Tensor) -> float:
    """AUROC of the uncertainty for flagging incorrect predictions: incorrect is the positive class.

    The probability that an incorrect prediction has higher uncertainty than a correct one, ties counting
    one half; 1 is perfect, 0.5 chance. Computed by :func:`trustbench.metrics.ood.ood_metrics` with the
    correct predictions as its "ID" set and the incorrect ones as its "OOD" (positive) set (through
    :func:`trustbench.metrics.failure.failure_detection`), so it equals
    sklearn's ``roc_auc_score(~correct, uncertainty)``. Postels et al. report the same number as the AUROC
    of the certainty for recognising correct predictions. NaN when every prediction is correct or every
    one is wrong.
    """
    return failure_detection(uncertainty, correct)["auroc"]
