"""Stress figures: metric curves against the stressed feature (tables), and pixel maps (images)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from trustbench.plots.figures import new_figure, save_figure
from trustbench.stress.settings import StressSettings

LINESTYLES = {"tilt": "-", "quantile": "-", "quantile_smooth": "--"}
TRANSFORM_LABELS = {
    "tilt": "reweighted",
    "quantile": "exact projection",
    "quantile_smooth": "isotonic polynomial",
}
MARKED_AT_ZERO = ("tilt", "quantile")  # transforms whose τ = 0 is exactly the unstressed test set
METRIC_LABELS = {
    "acc": "accuracy",
    "ece": "ECE",
    "uncertainty": "mean uncertainty score (higher: less sure)",
    "mean_prob": "mean P(Y=1)",
    "pos_rate": "positive rate",
}
METRIC_NOTE = (
    "Uncertainty score: the method's own, higher = less sure (ERM: minus the top probability). DI, SPD: "
    "unprivileged vs privileged group, as fair/<a>/di and spd; EOD: the larger of the TPR and FPR gaps; "
    "gray lines: parity (DI 1; SPD, EOD 0)."
)
CLASS_MAP_COLUMNS = 5
MAX_FEATURE_COLUMNS = 8  # data.stress.features=[all] names ~100 on Adult: a figure that wide is unreadable


def stress_curve_panels(
    table: pd.DataFrame,
    transforms: Sequence[str],
    path: str | os.PathLike[str],
    title: str,
    settings: StressSettings,
    untransported: Sequence[str] = (),
) -> Path:
    """One column of panels per feature, one row per group of metrics (accuracy and ECE, predictions,
    uncertainty, the fairness metrics of each attribute), each metric against the feature's target value
    under ``transforms``; the unstressed value is marked, bands drawn where the table has them."""
    stressed = list(dict.fromkeys(table["feature"]))
    features = stressed[:MAX_FEATURE_COLUMNS]
    rows = _metric_rows(set(table["metric"]))
    height = 1.9 * len(rows) + 1.6
    fig = new_figure((2.9 * len(features) + 0.8, height))
    fig.set_layout_engine(None)  # constrained layout of this many panels takes seconds; the margins are fixed
    fig.subplots_adjust(
        left=0.8 / fig.get_figwidth(),
        right=0.98,
        top=1 - 0.75 / height,
        bottom=1.2 / height,
        hspace=0.3,
        wspace=0.28,
    )
    axes = fig.subplots(len(rows), len(features), squeeze=False)
    chosen = table[table["transform"].isin(transforms)]
    for column, feature in enumerate(features):
        curves = chosen[chosen["feature"] == feature]
        axes[0, column].set_title(feature, fontsize=10)
        axes[-1, column].set_xlabel(_axis_label(feature, transforms, settings), fontsize=8)
        for row, (label, metrics) in enumerate(rows):
            ax = axes[row, column]
            ax.tick_params(labelsize=7)
            if column == 0:
                ax.set_ylabel(label, fontsize=8)
            if curves.empty:
                reason = "immutable:\nreweighted only" if feature in untransported else "not stressed"
                ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize=8, transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
                continue
            _draw_panel(ax, curves, metrics, transforms, legend=column == 0)
    if len(transforms) > 1:  # the line styles' meaning, once, in the first panel
        for transform in transforms:
            axes[0, 0].plot(
                [], [], LINESTYLES[transform], color="black", lw=1, label=TRANSFORM_LABELS[transform]
            )
        axes[0, 0].legend(fontsize=6, loc="best", framealpha=0.6)
    fig.suptitle(f"{title} · {_figure_title(transforms)}", fontsize=11, y=1 - 0.12 / height)
    note = _footnote(transforms, settings, untransported)
    if len(stressed) > len(features):
        note += f" The first {len(features)} of {len(stressed)} features; all are in stress_curves.csv."
    fig.text(0.01, 0.1 / height, note, fontsize=7, va="bottom", wrap=True)
    return save_figure(fig, path)


def pixel_maps(
    table: pd.DataFrame,
    unstressed: Mapping[str, float],
    shape: tuple[int, int],
    path: str | os.PathLike[str],
    title: str,
    settings: StressSettings,
) -> Path:
    """Change of accuracy, ECE and mean uncertainty from their unstressed values when each pixel (patch)
    is tilted to each key level: one row per level, one column per metric."""
    metrics = ("acc", "ece", "uncertainty")
    levels = sorted(settings.key_levels)
    fig = new_figure((3.0 * len(metrics), 2.8 * len(levels) + 0.8))
    axes = fig.subplots(len(levels), len(metrics), squeeze=False)
    for column, metric in enumerate(metrics):
        grids = [_map(table, metric, level, shape) - unstressed[metric] for level in levels]
        for row, (level, grid) in enumerate(zip(levels, grids, strict=True)):
            ax = axes[row, column]
            _show_map(fig, ax, grid, _symmetric_limit(grids))
            ax.set_title(f"Δ {METRIC_LABELS[metric]}, τ={level:+g} ({_direction(level)})", fontsize=8)
    fig.suptitle(f"{title} · entropic projection, pixel by pixel", fontsize=10)
    fig.text(0.01, 0.003, _pixel_footnote(unstressed, metrics, settings), fontsize=7, va="bottom", wrap=True)
    fig.get_layout_engine().set(rect=(0, 0.08, 1, 0.93))
    return save_figure(fig, path)


def pixel_class_maps(
    table: pd.DataFrame,
    unstressed: Mapping[str, float],
    shape: tuple[int, int],
    path: str | os.PathLike[str],
    title: str,
    settings: StressSettings,
) -> Path:
    """The influence of each pixel (patch) on each class: change of the mean predicted probability of the
    class when the pixel is tilted to the largest key level (binary tasks: P(Y=1) and the positive rate)."""
    metrics = sorted(
        (m for m in unstressed if m.startswith("mean_prob_")), key=lambda m: int(m.rsplit("_")[-1])
    )
    metrics = metrics or ["mean_prob", "pos_rate"]
    level = max(settings.key_levels)
    grids = [_map(table, metric, level, shape) - unstressed[metric] for metric in metrics]
    columns = min(len(metrics), CLASS_MAP_COLUMNS)
    rows = math.ceil(len(metrics) / columns)
    fig = new_figure((2.3 * columns, 2.3 * rows + 0.9))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    limit = _symmetric_limit(grids)
    for ax, metric, grid in zip(axes, metrics, grids, strict=False):
        _show_map(fig, ax, grid, limit)
        name = (
            f"P(class {metric.rsplit('_')[-1]})" if metric.startswith("mean_prob_") else METRIC_LABELS[metric]
        )
        ax.set_title(f"Δ mean {name}" if metric.startswith("mean_prob_") else f"Δ {name}", fontsize=8)
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    fig.suptitle(
        f"{title} · each pixel brightened (τ={level:+g}): change of the mean prediction", fontsize=10
    )
    fig.text(0.01, 0.003, _pixel_footnote(unstressed, (), settings), fontsize=7, va="bottom", wrap=True)
    fig.get_layout_engine().set(rect=(0, 0.1, 1, 0.92))
    return save_figure(fig, path)


def _metric_rows(available: set[str]) -> list[tuple[str, list[str]]]:
    """Panel rows: (y label, metrics drawn in it), only for metrics the table has."""
    classes = sorted(
        (m for m in available if m.startswith("mean_prob_")), key=lambda m: int(m.rsplit("_")[-1])
    )
    attributes = sorted(m.removeprefix("di_") for m in available if m.startswith("di_"))
    rows = [
        ("accuracy", ["acc"]),
        ("calibration error", ["ece"]),
        ("predictions", ["mean_prob", "pos_rate", *classes]),
        ("mean uncertainty score", ["uncertainty"]),
        *((f"fairness ({a})", [f"di_{a}", f"spd_{a}", f"eod_{a}"]) for a in attributes),
    ]
    return [
        (label, [m for m in metrics if m in available]) for label, metrics in rows if set(metrics) & available
    ]


def _draw_panel(
    ax, curves: pd.DataFrame, metrics: list[str], transforms: Sequence[str], legend: bool
) -> None:
    colors = matplotlib.colormaps["tab10"]
    if metrics[0].startswith("di_"):  # parity: DI 1, SPD and EOD 0
        for parity in (0, 1):
            ax.axhline(parity, color="gray", lw=0.6, alpha=0.6)
    for index, metric in enumerate(metrics):
        for transform in transforms:
            curve = curves[(curves["metric"] == metric) & (curves["transform"] == transform)]
            if curve.empty:
                continue
            x, y = curve["target"].to_numpy(), _finite(curve["value"])
            label = _metric_label(metric) if legend and transform == transforms[0] else None
            ax.plot(x, y, LINESTYLES[transform], color=colors(index), lw=1.3, label=label)
            if curve["low"].notna().any():
                ax.fill_between(
                    x, _finite(curve["low"]), _finite(curve["high"]), color=colors(index), alpha=0.2
                )
            if transform in MARKED_AT_ZERO:
                unstressed = curve[curve["tau"] == 0]
                ax.plot(
                    unstressed["target"], _finite(unstressed["value"]), "o", color="black", ms=3.5, zorder=3
                )
                ax.axvline(float(unstressed["target"].iloc[0]), color="gray", ls=":", lw=0.8)
    if legend and len(metrics) > 1:  # a lone metric is named by its row's label
        ax.legend(fontsize=6, loc="best", framealpha=0.6)


def _metric_label(metric: str) -> str:
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    if metric.startswith("mean_prob_"):
        return f"mean P(class {metric.rsplit('_')[-1]})"
    kind, _, attribute = metric.partition("_")
    return f"{kind.upper()} ({attribute})"


def _axis_label(feature: str, transforms: Sequence[str], settings: StressSettings) -> str:
    if "=" in feature:
        return f"share of {feature}"
    if transforms == ("tilt",):
        return f"mean of {feature}"
    return f"{_quantile_name(settings)} of {feature}"


def _quantile_name(settings: StressSettings) -> str:
    return "median" if settings.quantile_level == 0.5 else f"{settings.quantile_level:g}-quantile"


def _figure_title(transforms: Sequence[str]) -> str:
    if tuple(transforms) == ("tilt",):
        return "entropic projection (reweighting)"
    return "quantile-constrained W2 transport"


def _footnote(transforms: Sequence[str], settings: StressSettings, untransported: Sequence[str]) -> str:
    bands = f"Bands: 5-95 % over {settings.bootstrap} bootstrap resamples. " if settings.bootstrap else ""
    quantiles = f"from its {settings.alpha:g} to its {1 - settings.alpha:g} quantile"
    if tuple(transforms) == ("tilt",):
        return (
            f"Test rows reweighted (the KL-closest weights) so that the feature's mean, or a category's "
            f"share, "
            f"reaches each target {quantiles}. No row changes: values stay the data's own and one-hot groups "
            f"stay one-hot. {bands}{METRIC_NOTE} Dots and dotted line: unstressed."
        )
    kept = f" Immutable features ({', '.join(untransported)}) are not transported." if untransported else ""
    smooth = (
        f" Dashed: isotonic polynomial of degree {settings.degree}, whose own τ=0 point shows the smoothing."
        if "quantile_smooth" in transforms
        else ""
    )
    return (
        f"The feature's {_quantile_name(settings)} moved to each target {quantiles}; every row moves "
        f"through its rank, so other features and their dependence are kept, and values stay in the "
        f"feature's "
        f"observed range; a category's share changes by moving whole rows between one-hot categories.{kept} "
        f"Solid: exact projection (values between the old and new quantile collapse onto the target)."
        f"{smooth} "
        f"{bands}{METRIC_NOTE} Dots and dotted line: unstressed."
    )


def _pixel_footnote(unstressed: Mapping[str, float], metrics: Sequence[str], settings: StressSettings) -> str:
    reference = ", ".join(f"{METRIC_LABELS[m]} {unstressed[m]:.3f}" for m in metrics)
    unit = "pixel" if settings.patch == 1 else f"{settings.patch}×{settings.patch} patch"
    return (
        f"Each {unit}'s mean intensity tilted by reweighting the test images toward its "
        f"{settings.alpha:g} (τ=-1) or {1 - settings.alpha:g} (τ=+1) quantile; no image changes. "
        f"Colour: change from the unstressed value{' (' + reference + ')' if reference else ''}; "
        "red = higher, blue = lower. Gray: pixels that cannot be moved that way (constant, or with that "
        "quantile on the other side of their mean)."
    )


def _map(table: pd.DataFrame, metric: str, level: float, shape: tuple[int, int]) -> np.ndarray:
    grid = np.full(shape, np.nan)
    rows = table[(table["metric"] == metric) & np.isclose(table["tau"], level)]
    grid[rows["row"].to_numpy(), rows["col"].to_numpy()] = rows["value"].to_numpy()
    return grid


def _show_map(fig, ax, grid: np.ndarray, limit: float) -> None:
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="lightgray")
    image = ax.imshow(grid, cmap=cmap, vmin=-limit, vmax=limit)
    ax.set_xticks([])
    ax.set_yticks([])
    colorbar = fig.colorbar(image, ax=ax, shrink=0.8)
    colorbar.ax.tick_params(labelsize=6)


def _symmetric_limit(grids: Sequence[np.ndarray]) -> float:
    finite = np.concatenate([np.abs(g[np.isfinite(g)]) for g in grids])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def _direction(level: float) -> str:
    return "darker" if level < 0 else "brighter"


def _finite(values: pd.Series) -> np.ndarray:
    """Values to draw: ±inf (a disparate impact over a zero rate) left out like NaN."""
    array = values.to_numpy(dtype=float)
    return np.where(np.isfinite(array), array, np.nan)
