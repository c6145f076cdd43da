"""Counterfactual figures and tables: image grids (input, counterfactual, difference) and, for tabular data,
the table of changed features in the raw data's units.

Inputs are in model-input space, as the explainers return them (:mod:`trustbench.metrics.counterfactual`):
``x`` (N, *shape) and ``x_cf`` (N, *shape) or (N, k, *shape) for k counterfactuals per input.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from torch import Tensor

from trustbench.data.arrays import TabularMeta
from trustbench.metrics.counterfactual import TOLERANCE, counterfactual_sets
from trustbench.plots.figures import new_figure, save_figure
from trustbench.results.record import write_atomically

PANEL_INCHES = 1.8
TABLE_COLUMNS = ("example", "counterfactual", "feature", "original", "counterfactual_value")


def image_grid(
    x: Tensor,
    x_cf: Tensor,
    probs: Tensor,
    probs_cf: Tensor,
    target: Tensor,
    path: str | os.PathLike[str],
    class_names: tuple[str, ...] | None = None,
    max_rows: int = 8,
) -> Path:
    """One row per input (the first ``max_rows``): the input, then for each of its counterfactuals the
    counterfactual and its difference map x' − x; saved as PNG.

    ``x`` is (N, C, H, W) with C = 1 (grey) or 3 (RGB), ``x_cf`` (N, C, H, W) or (N, k, C, H, W);
    ``probs`` (N, K) and ``probs_cf`` (N, K) or (N, k, K) are the model's class probabilities. The input's
    title names its predicted class and confidence, each counterfactual's the target class and the
    probability the model gives it. An input and its counterfactuals share one colour scale, the range of
    their values, so values in normalised model space display faithfully. Difference maps show per pixel
    the signed change of the channel that changed most (so opposite changes of two channels do not cancel)
    on a diverging map centred at 0, red where the counterfactual is larger.
    """
    sets, set_probs = _image_sets(x, x_cf, probs, probs_cf)
    if target.shape != (len(x),) or max_rows < 1:
        raise ValueError(
            f"target must hold one class per input, shape ({len(x)},), and max_rows be >= 1; got target of "
            f"shape {tuple(target.shape)} and max_rows={max_rows}."
        )
    rows, k = min(len(x), max_rows), sets.shape[1]
    fig = new_figure((PANEL_INCHES * (1 + 2 * k), PANEL_INCHES * rows))
    axes = fig.subplots(rows, 1 + 2 * k, squeeze=False)
    for row in range(rows):
        images = torch.cat([x[row : row + 1], sets[row]]).detach().to("cpu", torch.float64)
        low, high = float(images.min()), float(images.max())
        predicted = int(probs[row].argmax())
        _show(axes[row, 0], images[0], low, high)
        axes[row, 0].set_title(f"input: {_name(predicted, class_names)} ({float(probs[row, predicted]):.2f})")
        wanted = int(target[row])
        for j in range(k):
            difference = _dominant_change(images[1 + j] - images[0]).numpy()
            reach = max(float(np.abs(difference).max()), 1e-12)
            _show(axes[row, 1 + 2 * j], images[1 + j], low, high)
            confidence = float(set_probs[row, j, wanted])
            axes[row, 1 + 2 * j].set_title(f"cf → {_name(wanted, class_names)} ({confidence:.2f})")
            axes[row, 2 + 2 * j].imshow(difference, cmap="RdBu_r", vmin=-reach, vmax=reach)
            axes[row, 2 + 2 * j].set_title("x' − x")
    for ax in axes.flat:
        ax.set_axis_off()
    return save_figure(fig, path)


def changed_features(x: Tensor, x_cf: Tensor, meta: TabularMeta, tol: float = TOLERANCE) -> pd.DataFrame:
    """One row per changed feature of every counterfactual, values in the raw data's units.

    Columns :data:`TABLE_COLUMNS`: ``example`` (row of ``x``), ``counterfactual`` (index within its set, 0
    for one counterfactual per input), ``feature`` and its ``original`` and ``counterfactual_value``.
    Continuous features changed by more than ``tol`` are shown unscaled, raw = min + v·(max − min) with
    ``meta.ranges`` (a constant feature was scaled by a width of 1, as the encoder does). A one-hot group
    ``feature=category`` whose columns changed shows the category of its largest column on each side.
    Rows are ordered by example, counterfactual, then feature in column order.
    """
    sets = _tabular_sets(x, x_cf, meta)
    records = []
    for example in range(len(x)):
        for index in range(sets.shape[1]):
            before, after = x[example].to(torch.float64), sets[example, index].to(torch.float64)
            for feature, original, new in _feature_changes(before, after, meta, tol):
                records.append((example, index, feature, original, new))
    return pd.DataFrame.from_records(records, columns=list(TABLE_COLUMNS))


def save_changed_features(
    table: pd.DataFrame, run_dir: str | os.PathLike[str], name: str = "cf_changed_features"
) -> tuple[Path, Path]:
    """Write ``table`` (from :func:`changed_features`) as ``<name>.csv`` and ``<name>.md`` in ``run_dir``,
    each atomically; returns both paths, CSV first."""
    run_dir = Path(run_dir)
    csv_path, markdown_path = run_dir / f"{name}.csv", run_dir / f"{name}.md"
    write_atomically(csv_path, table.to_csv(index=False))
    write_atomically(markdown_path, table.to_markdown(index=False) + "\n")
    return csv_path, markdown_path


def _feature_changes(
    before: Tensor, after: Tensor, meta: TabularMeta, tol: float
) -> list[tuple[str, float | str, float | str]]:
    """(feature, original, new) of each changed feature of one row, ordered by the feature's first column."""
    changed = (after - before).abs() > tol
    found: list[tuple[int, str, float | str, float | str]] = []
    for column in meta.continuous:
        if changed[column]:
            found.append(
                (column, meta.feature_names[column], _raw(before, column, meta), _raw(after, column, meta))
            )
    for group in meta.categorical_groups:
        columns = list(group)
        if changed[columns].any():
            feature = meta.feature_names[columns[0]].partition("=")[0]
            found.append(
                (columns[0], feature, _category(before, columns, meta), _category(after, columns, meta))
            )
    return [change[1:] for change in sorted(found)]


def _raw(row: Tensor, column: int, meta: TabularMeta) -> float:
    low, high = meta.ranges[meta.feature_names[column]]
    return low + float(row[column]) * (high - low if high > low else 1.0)


def _category(row: Tensor, columns: list[int], meta: TabularMeta) -> str:
    winner = columns[int(row[columns].argmax())]
    return meta.feature_names[winner].partition("=")[2]


def _tabular_sets(x: Tensor, x_cf: Tensor, meta: TabularMeta) -> Tensor:
    width = len(meta.feature_names)
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(
            f"x must be tabular rows (N, {width}), one column per name in meta; got shape {tuple(x.shape)}."
        )
    return counterfactual_sets(x, x_cf)


def _image_sets(x: Tensor, x_cf: Tensor, probs: Tensor, probs_cf: Tensor) -> tuple[Tensor, Tensor]:
    """``x_cf`` as (N, k, C, H, W) and ``probs_cf`` as (N, k, K), adding a set axis of 1 when absent."""
    sets = counterfactual_sets(x, x_cf)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"image_grid needs images (N, C, H, W) with C = 1 or 3; got shape {tuple(x.shape)}. Use "
            "changed_features for tabular rows."
        )
    set_probs = probs_cf.unsqueeze(1) if probs_cf.ndim == 2 else probs_cf
    if probs.ndim != 2 or len(probs) != len(x) or set_probs.shape != (*sets.shape[:2], probs.shape[1]):
        raise ValueError(
            f"probs must be (N, K) and probs_cf (N, K) or (N, k, K) like the counterfactuals; got "
            f"{tuple(probs.shape)} and {tuple(probs_cf.shape)} for counterfactuals {tuple(x_cf.shape)}."
        )
    return sets, set_probs


def _show(ax: Axes, image: Tensor, low: float, high: float) -> None:
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=low, vmax=high)
    else:
        scaled = (image - low) / (high - low if high > low else 1.0)
        ax.imshow(scaled.permute(1, 2, 0).clamp(0, 1).numpy())


def _dominant_change(difference: Tensor) -> Tensor:
    """(C, H, W) → (H, W): each pixel's signed change in the channel where its magnitude is largest."""
    return difference.gather(0, difference.abs().argmax(dim=0, keepdim=True))[0]


def _name(label: int, class_names: tuple[str, ...] | None) -> str:
    return class_names[label] if class_names is not None else str(label)
