"""Regression metrics (``reg/`` keys), in the target's own units, on 1-D tensors of equal length.

Conventions (each function repeats its own):

- ``rmse`` √mean (ŷ − y)²; ``mae`` mean |ŷ − y|; ``nll`` −mean log p(y) in nats, with the density in
  target units (so it shifts by log s when targets are scaled by s), the constant ½ log 2π included.
- Sparsification (Ilg et al., ECCV 2018), as SLURP's ``uncertainty_eval.py`` computes it: for fractions
  f = 0, 1/B, ..., (B−1)/B (B = 20), drop the ⌈f·N⌉ rows with the highest uncertainty (``int((1−f)·N)``
  rows kept, at least one: with N < B SLURP's code would average an empty set) and compute the metric
  (RMSE, or AbsRel = mean |ŷ − y| / y) on the rest; the oracle curve drops the rows with the highest
  true error (|ŷ − y| for RMSE, |ŷ − y|/y for AbsRel). Both curves are divided by
  their value at f = 0. ``ause`` = Σ_f |curve(f) − oracle(f)|, a SUM over the B fractions (SLURP's
  convention; divide by B for the mean gap); 0 is perfect. ``aurg`` (Poggi et al., CVPR 2020) = Σ_f
  (1 − curve(f)), the gain over dropping random rows, whose expected normalised curve is 1; > 0 is better
  than random. AbsRel needs positive targets.
- ``coverage`` share of y inside [lower, upper] (bounds included); ``width`` mean (upper − lower).
- ``quantile_calibration_error`` (Kuleshov, Fenner & Ermon, ICML 2018, eq. 9 with w_j = 1):
  Σ_j (p_j − p̂_j)² with p̂_j the share of rows whose predicted CDF at y is ≤ p_j, p_j = 0.05, 0.10, ...,
  0.95 (19 levels). 0 is perfect calibration.
- ``spearman`` Spearman's rank correlation between uncertainty and |ŷ − y| (scipy, ties averaged); > 0
  means higher uncertainty goes with larger errors.
- OOD AUROC: :func:`trustbench.metrics.ood.ood_metrics` on the uncertainty, OOD positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr
from torch import Tensor

SPARSIFICATION_BINS = 20
CALIBRATION_LEVELS = tuple(round(0.05 * j, 2) for j in range(1, 20))


def _vectors(*tensors: Tensor) -> list[np.ndarray]:
    arrays = [t.detach().double().cpu().numpy().ravel() for t in tensors]
    if len({len(a) for a in arrays}) != 1 or len(arrays[0]) == 0:
        raise ValueError(
            f"regression metrics need non-empty vectors of one length; got {[len(a) for a in arrays]}"
        )
    return arrays


def rmse(prediction: Tensor, target: Tensor) -> float:
    """√mean (ŷ − y)²."""
    p, y = _vectors(prediction, target)
    return float(np.sqrt(np.mean((p - y) ** 2)))


def mae(prediction: Tensor, target: Tensor) -> float:
    """mean |ŷ − y|."""
    p, y = _vectors(prediction, target)
    return float(np.mean(np.abs(p - y)))


def nll(log_density: Tensor) -> float:
    """−mean log p(y): the rows' predictive log densities at their targets, in target units, nats."""
    (values,) = _vectors(log_density)
    return float(-np.mean(values))


@dataclass(frozen=True)
class Sparsification:
    """Normalised sparsification curves over the kept fractions 1 − f, and their AUSE / AURG sums."""

    fractions: np.ndarray
    curve: np.ndarray
    oracle: np.ndarray

    @property
    def ause(self) -> float:
        return float(np.abs(self.curve - self.oracle).sum())

    @property
    def aurg(self) -> float:
        return float((1 - self.curve).sum())


def sparsification(
    uncertainty: Tensor,
    prediction: Tensor,
    target: Tensor,
    metric: str = "rmse",
    bins: int = SPARSIFICATION_BINS,
) -> Sparsification:
    """SLURP's sparsification curves for ``metric`` rmse or absrel (module docstring)."""
    u, p, y = _vectors(uncertainty, prediction, target)
    error = np.abs(p - y)
    if metric == "absrel":
        if np.any(y <= 0):
            raise ValueError("AbsRel sparsification needs positive targets")
        row_error, oracle_key = error / y, error / y
    elif metric == "rmse":
        row_error, oracle_key = error**2, error
    else:
        raise ValueError(f"sparsification metric must be rmse or absrel; got {metric!r}")
    by_uncertainty, by_error = np.argsort(u, kind="stable"), np.argsort(oracle_key, kind="stable")
    fractions = np.arange(bins) / bins
    kept = [max(1, int((1.0 - f) * len(y))) for f in fractions]  # SLURP's code averages 0 rows when N < B

    def curve(order: np.ndarray) -> np.ndarray:
        values = np.array([row_error[order[:n]].mean() for n in kept])
        values = np.sqrt(values) if metric == "rmse" else values
        return values / values[0]

    return Sparsification(fractions, curve(by_uncertainty), curve(by_error))


def coverage(lower: Tensor, upper: Tensor, target: Tensor) -> float:
    """Share of targets with lower ≤ y ≤ upper."""
    lo, hi, y = _vectors(lower, upper, target)
    return float(np.mean((lo <= y) & (y <= hi)))


def width(lower: Tensor, upper: Tensor) -> float:
    """mean (upper − lower)."""
    lo, hi = _vectors(lower, upper)
    return float(np.mean(hi - lo))


def calibration_curve(cdf_at_target: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Kuleshov's levels p_j and the observed shares p̂_j = mean 1[F(y) ≤ p_j]."""
    (values,) = _vectors(cdf_at_target)
    levels = np.array(CALIBRATION_LEVELS)
    return levels, (values[None, :] <= levels[:, None]).mean(axis=1)


def quantile_calibration_error(cdf_at_target: Tensor) -> float:
    """Σ_j (p_j − p̂_j)² over p_j = 0.05..0.95 (Kuleshov et al. 2018, w_j = 1)."""
    levels, observed = calibration_curve(cdf_at_target)
    return float(((levels - observed) ** 2).sum())


def spearman(uncertainty: Tensor, prediction: Tensor, target: Tensor) -> float:
    """Spearman correlation of uncertainty and |ŷ − y| (NaN when either is constant)."""
    u, p, y = _vectors(uncertainty, prediction, target)
    if np.ptp(u) == 0 or np.ptp(np.abs(p - y)) == 0:
        return float("nan")
    return float(spearmanr(u, np.abs(p - y)).statistic)
