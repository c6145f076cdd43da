"""Robust accuracy against the attack budget ε: one panel per norm, one line per attack."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from trustbench.plots.figures import new_figure, save_figure

# attack -> (panel, label); APGD and PGD share the ℓ∞ panel so a gap between them shows at a glance.
ATTACKS = {
    "pgd_linf": ("ℓ∞", "PGD"),
    "apgd_ce": ("ℓ∞", "APGD-CE"),
    "pgd_l2": ("ℓ2", "PGD"),
}


def robust_accuracy_curves(
    curves: Mapping[str, Mapping[float, float]], path: str | os.PathLike[str], title: str
) -> Path:
    """Robust accuracy (y, 0..1) at each ε (x) of each attack in `curves` ({attack: {ε: accuracy}}), under
    `title` (which model, how many points, how hard the attacks tried)."""
    panels = list(dict.fromkeys(ATTACKS[attack][0] for attack in curves))
    fig = new_figure((4.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for attack, curve in curves.items():
            if ATTACKS[attack][0] != panel:
                continue
            eps = sorted(curve)
            ax.plot(eps, [curve[e] for e in eps], marker="o", label=ATTACKS[attack][1])
        ax.set_xlabel(f"{panel} budget ε (model-input units)")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
