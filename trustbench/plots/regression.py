"""Regression uncertainty figures: sparsification curves, quantile calibration, intervals against truth."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch import Tensor

from trustbench.metrics.regression import Sparsification, calibration_curve, quantile_calibration_error
from trustbench.plots.figures import new_figure, save_figure

METRIC_LABELS = {"rmse": "RMSE", "absrel": "AbsRel"}
INTERVAL_POINTS = 80


def sparsification_plot(curves: dict[str, Sparsification], path: str | os.PathLike[str], title: str) -> Path:
    """Each metric's curve (uncertainty order) and oracle (error order), normalised to 1 on the full set,
    against the share of rows removed; the legend carries AUSE (SLURP's sum over 20 fractions)."""
    fig = new_figure((6.0 * len(curves), 4.5))
    for ax, (name, curve) in zip(fig.subplots(1, len(curves), squeeze=False)[0], curves.items(), strict=True):
        label = METRIC_LABELS[name]
        ax.plot(
            curve.fractions,
            curve.curve,
            marker="o",
            ms=3,
            label=f"by uncertainty (AUSE {curve.ause:.2f}: sum of the 20 gaps)",
        )
        ax.plot(
            curve.fractions, curve.oracle, marker="o", ms=3, color="black", label="oracle (by true error)"
        )
        ax.axhline(1.0, color="grey", ls=":", label="random (expected)")
        ax.set_xlabel("share of test rows removed (most uncertain first)")
        ax.set_ylabel(f"{label} of the rest / {label} of all")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{label} sparsification · {title}", fontsize=9)
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def calibration_plot(cdf_at_target: Tensor, path: str | os.PathLike[str], title: str) -> Path:
    """Kuleshov's calibration curve: observed share of targets below each predicted quantile level."""
    levels, observed = calibration_curve(cdf_at_target)
    fig = new_figure((4.8, 4.5))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfect calibration")
    ax.plot(
        levels,
        observed,
        marker="o",
        ms=3,
        label=f"model (QCE {quantile_calibration_error(cdf_at_target):.3f})",
    )
    ax.set_xlabel("predicted quantile level p")
    ax.set_ylabel("share of test targets below the p-quantile")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"quantile calibration · {title}", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def interval_plot(
    target: Tensor,
    mean: Tensor,
    lower: Tensor,
    upper: Tensor,
    path: str | os.PathLike[str],
    title: str,
    level: float,
) -> Path:
    """Up to 80 test rows (evenly spaced in target order): truth, prediction and the `level` interval,
    rows sorted by the true target so a reader sees where intervals widen and where truth falls outside."""
    y, m, lo, hi = (t.detach().double().cpu().numpy() for t in (target, mean, lower, upper))
    rows = np.argsort(y, kind="stable")[
        np.unique(np.linspace(0, len(y) - 1, min(INTERVAL_POINTS, len(y))).round().astype(int))
    ]
    inside = (lo[rows] <= y[rows]) & (y[rows] <= hi[rows])
    positions = np.arange(len(rows))
    fig = new_figure((7.5, 4.5))
    ax = fig.add_subplot()
    ax.fill_between(
        positions, lo[rows], hi[rows], color="tab:blue", alpha=0.25, step="mid", label=f"{level:.0%} interval"
    )
    ax.plot(positions, m[rows], color="tab:blue", lw=1, label="prediction")
    ax.scatter(positions[inside], y[rows][inside], s=10, color="black", label="truth, inside", zorder=3)
    ax.scatter(
        positions[~inside],
        y[rows][~inside],
        s=14,
        color="tab:red",
        marker="x",
        label="truth, outside",
        zorder=3,
    )
    ax.set_xlabel(f"test rows sorted by true target ({len(rows)} of {len(y)} shown)")
    ax.set_ylabel("target (its own units)")
    share = float(np.mean((lo <= y) & (y <= hi)))
    ax.set_title(f"{level:.0%} intervals, coverage {share:.1%} on all test rows · {title}", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
