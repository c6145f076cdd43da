"""Pictures of explanations: inputs beside their maps, a table's most relevant features, and the weights
of a transparent model over concepts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from trustbench.plots.figures import new_figure, save_figure

PANEL_INCHES = 1.6


def saliency_grid(
    images: Tensor,
    maps: Mapping[str, Tensor],
    titles: Sequence[str],
    path: str | os.PathLike[str],
    max_columns: int = 8,
    legend: str = "red: for the class, blue: against; each map scaled to its own maximum",
) -> Path:
    """One column per input (the first `max_columns`), titled by `titles`: the input on top, then one row
    per named map (N×H×W), the map's name at the row's left, and `legend` (what the colours mean) above.

    A map with negative values is drawn on a diverging scale centred at 0 (red: evidence for the class,
    blue: against); a non-negative one from white (0) to dark red. Each map is scaled to its own largest
    magnitude, so maps of different methods stay readable: the colour says where, not how much.
    """
    columns = min(len(images), max_columns)
    names = list(maps)
    fig = new_figure((PANEL_INCHES * columns + 1.0, PANEL_INCHES * (1 + len(names)) + 0.4))
    axes = fig.subplots(1 + len(names), columns, squeeze=False)
    for column in range(columns):
        image = images[column].detach().cpu().float()
        shown = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
        low, high = float(shown.min()), float(shown.max())
        axes[0, column].imshow(((shown - low) / max(high - low, 1e-12)).numpy(), cmap="gray")
        axes[0, column].set_title(titles[column], fontsize=9)
        for row, name in enumerate(names, start=1):
            relevance = maps[name][column].detach().cpu().float()
            reach = max(float(relevance.abs().max()), 1e-12)
            signed = bool((maps[name] < 0).any())
            axes[row, column].imshow(
                relevance.numpy(),
                cmap="RdBu_r" if signed else "Reds",
                vmin=-reach if signed else 0.0,
                vmax=reach,
            )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=9)
    for row, name in enumerate(names, start=1):
        axes[row, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(legend, fontsize=9)
    return save_figure(fig, path)


def feature_bars(
    relevance: Tensor, names: Sequence[str], path: str | os.PathLike[str], top: int = 15
) -> Path:
    """Mean |relevance| per feature over the explained rows (N×D), the `top` largest, largest on top."""
    mean = relevance.detach().abs().mean(dim=0).cpu()
    order = torch.argsort(mean, descending=True)[:top].flip(0)
    fig = new_figure((6.0, 0.3 * len(order) + 1.0))
    ax = fig.subplots()
    ax.barh([names[i] for i in order.tolist()], mean[order].numpy(), color="tab:red")
    ax.set_xlabel("mean |relevance| over the explained rows")
    return save_figure(fig, path)


def rule_weights(
    weights: Tensor, classes: Sequence[str], concepts: Sequence[str], path: str | os.PathLike[str]
) -> Path:
    """A transparent model's weights (classes × concepts) as a heat map with the values written in."""
    fig = new_figure((0.8 * len(concepts) + 2.5, 0.5 * len(classes) + 2.0))
    ax = fig.subplots()
    reach = max(float(weights.abs().max()), 1e-12)
    ax.imshow(weights.numpy(), cmap="RdBu_r", vmin=-reach, vmax=reach)
    ax.set_xticks(range(len(concepts)), concepts, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (row, column), value in np.ndenumerate(weights.numpy()):
        colour = "white" if abs(value) > reach / 2 else "black"  # readable on the dark cells too
        ax.text(column, row, f"{value:.1f}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_title("logistic regression weight of each concept for each class")
    return save_figure(fig, path)
