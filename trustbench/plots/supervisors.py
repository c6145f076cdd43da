"""The supervisor benchmark's picture: a grid of its ambiguous inputs with their probabilistic labels."""

from __future__ import annotations

import math
import os
from pathlib import Path

from torch import Tensor

from trustbench.plots.figures import new_figure, save_figure

PANEL_INCHES = 1.1


def ambiguous_grid(
    images: Tensor, soft_labels: Tensor, path: str | os.PathLike[str], columns: int = 10, count: int = 60
) -> Path:
    """Up to `count` raw images (N×C×H×W in [0, 1]) evenly spaced through the set, each titled with the
    two classes its label splits between and their probabilities, e.g. ``3:0.48 5:0.52``."""
    if len(images) != len(soft_labels) or not len(images):
        raise ValueError(
            f"give one probabilistic label per image and at least one image; got {len(images)} images "
            f"and {len(soft_labels)} labels"
        )
    shown = list(range(0, len(images), max(1, len(images) // count)))[:count]
    rows = math.ceil(len(shown) / columns)
    fig = new_figure((PANEL_INCHES * columns, PANEL_INCHES * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, index in zip(axes.flat, shown, strict=False):
        image = images[index].detach().cpu().permute(1, 2, 0).squeeze(2)
        ax.imshow(image.numpy(), cmap="gray", vmin=0.0, vmax=1.0)
        top = soft_labels[index].topk(2)
        classes = sorted(zip(top.indices.tolist(), top.values.tolist(), strict=True))
        ax.set_title(" ".join(f"{c}:{p:.2f}" for c, p in classes), fontsize=7)
    return save_figure(fig, path)
