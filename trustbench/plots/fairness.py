"""Fairness figures: per-group rates of one run, and the accuracy-fairness trade-off of a λ sweep."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from trustbench.metrics.fairness import RATE_KEYS
from trustbench.plots.figures import new_figure, save_figure

RATES = tuple(RATE_KEYS.values())  # acc, tpr, fpr, sel


def group_rates_of(report: Mapping[str, float]) -> dict[str, dict[str, dict[str, float]]]:
    """``fair/<attribute>/<group>/<rate>`` entries of a fairness report as {attribute: {group: {rate: v}}}."""
    table: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for key, value in report.items():
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "fair" and parts[3] in RATES:
            table[parts[1]][parts[2]][parts[3]] = value
    return {attribute: dict(groups) for attribute, groups in table.items()}


def group_rate_bars(report: Mapping[str, float], path: str | os.PathLike[str], title: str = "") -> Path:
    """One panel per attribute (and intersection): accuracy, TPR, FPR and selection rate of each group.

    Undefined rates (NaN: a group without positives or negatives) are left as gaps, never drawn as 0.
    """
    table = group_rates_of(report)
    if not table:
        raise ValueError("the report has no per-group rates (fair/<attribute>/<group>/<rate>) to plot")
    fig = new_figure((6.0, 2.6 * len(table)))
    axes = fig.subplots(len(table), 1, squeeze=False)[:, 0]
    width = 0.8 / len(RATES)
    for ax, (attribute, groups) in zip(axes, table.items(), strict=True):
        positions = np.arange(len(groups))
        for i, rate in enumerate(RATES):
            values = [groups[group].get(rate, math.nan) for group in groups]
            ax.bar(positions + (i - (len(RATES) - 1) / 2) * width, values, width, label=rate)
        ax.set_xticks(positions, list(groups), fontsize=7 if len(groups) > 4 else 9)
        ax.set_ylim(0, 1.2)  # headroom for the legend above the bars
        ax.set_title(attribute, fontsize=10)
        ax.legend(fontsize=7, ncols=len(RATES), loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def tradeoff_plot(
    summary: pd.DataFrame,
    by: Sequence[str],
    fairness_metrics: Sequence[str],
    path: str | os.PathLike[str],
    accuracy: str = "cls/acc",
) -> Path:
    """Accuracy against each fairness metric over a sweep, one panel per metric, mean ± std over seeds.

    `summary` is :func:`trustbench.results.table.summarize`'s table grouped `by` keys: the first key (e.g.
    ``method``) gives one line per value, the others (e.g. ``method.lam``) label its points, joined in the
    table's order. Published rows (``source`` other than "ours") are left out.
    """
    ours = summary[summary["source"] == "ours"]
    if ours.empty or not fairness_metrics:
        raise ValueError("a trade-off plot needs at least one finished run and one fairness metric")
    fig = new_figure((4.2 * len(fairness_metrics), 3.8))
    axes = fig.subplots(1, len(fairness_metrics), squeeze=False)[0]
    for ax, metric in zip(axes, fairness_metrics, strict=True):
        for series, rows in ours.groupby(by[0], dropna=False, sort=False):
            ax.errorbar(
                rows[metric],
                rows[accuracy],
                xerr=rows.get(f"{metric} std"),
                yerr=rows.get(f"{accuracy} std"),
                marker="o",
                capsize=2,
                label=str(series),
            )
            for _, row in rows.iterrows():
                label = ",".join(f"{key.split('.')[-1]}={row[key]}" for key in by[1:])
                if label:
                    ax.annotate(
                        label,
                        (row[metric], row[accuracy]),
                        fontsize=6,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        ax.set_xlabel(metric)
        ax.set_ylabel(accuracy)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)
