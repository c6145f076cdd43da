"""The audit's summary figure: every OOD detector's near- and far-OOD AUROC on one model, side by side."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from trustbench.plots.figures import new_figure, save_figure


def detector_auroc_bars(
    aurocs: dict[str, tuple[float | None, float | None]], path: str | os.PathLike[str], title: str = ""
) -> Path:
    """Horizontal bars of (near, far) AUROC per detector, best near AUROC on top, chance at 0.5."""
    order = sorted(aurocs, key=lambda name: _value(aurocs[name][0]))
    fig = new_figure((6.0, 1.2 + 0.32 * len(order)))
    ax = fig.add_subplot()
    rows = np.arange(len(order))
    height = 0.38
    for offset, index, label, colour in (
        (height / 2, 0, "near OOD", "#3b6fb6"),
        (-height / 2, 1, "far OOD", "#e08a2c"),
    ):
        values = [_value(aurocs[name][index]) for name in order]
        bars = ax.barh(rows + offset, values, height=height, label=label, color=colour)
        ax.bar_label(bars, labels=[f"{v:.3f}" if v > 0 else "–" for v in values], fontsize=7, padding=2)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set(
        yticks=rows,
        yticklabels=order,
        xlim=(0.0, 1.08),
        xlabel="AUROC (OOD positive; 0.5 = chance)",
        title=title or "OOD detectors on one model",
    )
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def _value(auroc: float | None) -> float:
    return 0.0 if auroc is None or math.isnan(auroc) else float(auroc)
