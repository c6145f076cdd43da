"""Counterfactual figures and tables: image grids (input, counterfactual, difference), the record of every
counterfactual (:func:`counterfactual_records`, saved by :func:`save_counterfactuals`) and, for tabular
data, the table of changed features in the raw data's units.

Inputs are in model-input space, as the explainers return them (:mod:`trustbench.metrics.counterfactual`):
``x`` (N, *shape) and ``x_cf`` (N, *shape) or (N, k, *shape) for k counterfactuals per input. Functions
that show original units take tabular rows in the encoder's space (min-max scaled, one-hot), which is
model space unless ``data.normalize`` standardised the columns on top.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from torch import Tensor

from trustbench.data.arrays import TabularMeta
from trustbench.metrics.counterfactual import (
    TOLERANCE,
    Groups,
    counterfactual_sets,
    l0_distance,
    l1_distance,
    l2_distance,
    valid_mask,
)
from trustbench.plots.figures import new_figure, save_figure
from trustbench.results.record import write_atomically, write_bytes_atomically

PANEL_INCHES = 1.8
TABLE_COLUMNS = ("example", "counterfactual", "feature", "original", "counterfactual_value")
RECORD_COLUMNS = ("test_row", "counterfactual", "target", "predicted", "valid", "l0", "l1", "l2")
FACTUAL_PREFIX = "factual:"
MODEL_PREFIX = "model:"
RECORDS_NAME = "counterfactuals"
FLOAT32_STEP = 2.0**-23
"""Spacing of float32 numbers in [1, 2): an encoded value below 2 (test rows may pass the training range's
1) is stored to within it, so decimals finer than width · this carry no information."""


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
    for one counterfactual per input), ``feature`` and its ``original`` and ``counterfactual_value``, as
    :func:`decode_rows` gives them. A feature has changed when one of its columns moved by more than
    ``tol``. Rows are ordered by example, counterfactual, then feature in column order.
    """
    sets = _tabular_sets(x, x_cf, meta)
    count, per_input = sets.shape[:2]
    before = decode_rows(x, meta)
    after = decode_rows(sets.reshape(count * per_input, -1), meta)
    changed = (sets.to(torch.float64) - x.to(torch.float64).unsqueeze(1)).abs() > tol
    records = [
        (example, index, feature, before.at[example, feature], after.at[example * per_input + index, feature])
        for example in range(count)
        for index in range(per_input)
        for feature, columns in _features(meta)
        if changed[example, index, list(columns)].any()
    ]
    return pd.DataFrame.from_records(records, columns=list(TABLE_COLUMNS))


def decode_rows(rows: Tensor, meta: TabularMeta) -> pd.DataFrame:
    """Encoded rows (M, D) in the raw table's units: one column per feature, in the order of their columns.

    Continuous features are unscaled, raw = min + v·(max − min) with ``meta.ranges`` (a constant feature was
    scaled by a width of 1, as the encoder does), then rounded to the decimals the float32 encoding
    resolves, ⌊−log10(width · 2⁻²³)⌋ (age on Adult: 5), so an encoded raw value comes back exactly rather
    than as 38.999998. A one-hot group ``feature=category`` gives the category of its largest
    column (the first on ties), so a relaxed, not yet one-hot answer still reads as a category.
    """
    if rows.ndim != 2 or rows.shape[1] != len(meta.feature_names):
        raise ValueError(
            f"rows must be encoded tabular rows (M, {len(meta.feature_names)}); got {tuple(rows.shape)}."
        )
    values = rows.detach().to("cpu", torch.float64)
    decoded: dict[str, np.ndarray] = {}
    for feature, columns in _features(meta):
        if feature in meta.ranges:
            low, high = meta.ranges[feature]
            width = high - low if high > low else 1.0
            decimals = math.floor(-math.log10(width * FLOAT32_STEP))
            decoded[feature] = np.round((low + values[:, columns[0]] * width).numpy(), decimals)
        else:
            categories = np.array([meta.feature_names[column].partition("=")[2] for column in columns])
            decoded[feature] = categories[values[:, list(columns)].argmax(dim=1).numpy()]
    return pd.DataFrame(decoded)


def counterfactual_records(
    test_rows: Tensor,
    x: Tensor,
    x_cf: Tensor,
    target: Tensor,
    pred_cf: Tensor,
    groups: Groups = (),
    tol: float = TOLERANCE,
) -> pd.DataFrame:
    """One row per counterfactual, columns :data:`RECORD_COLUMNS`, in the order of ``x_cf`` flattened.

    ``test_rows`` (N,) are the indices of the inputs ``x`` in the test split; ``counterfactual`` is the index
    within its input's set (0 for one counterfactual per input); ``target`` the class asked for,
    ``predicted`` the model's class at the counterfactual, ``valid`` whether they agree
    (:func:`~trustbench.metrics.counterfactual.valid_mask`); ``l0`` (``groups`` count as one feature each),
    ``l1`` and ``l2`` are the per-counterfactual distances of :mod:`trustbench.metrics.counterfactual`, in
    model space, for valid and invalid counterfactuals alike.
    """
    valid = valid_mask(pred_cf, target)
    per_input = valid.shape[1] if valid.ndim == 2 else 1
    if test_rows.shape != (len(x),) or tuple(valid.shape) != tuple(x_cf.shape[: x_cf.ndim - x.ndim + 1]):
        raise ValueError(
            f"give one test row and target per input and one predicted class per counterfactual; got "
            f"{tuple(test_rows.shape)} test rows and predictions {tuple(pred_cf.shape)} for inputs "
            f"{tuple(x.shape)} and counterfactuals {tuple(x_cf.shape)}."
        )
    columns = {
        "test_row": test_rows.repeat_interleave(per_input),
        "counterfactual": torch.arange(per_input).repeat(len(x)),
        "target": target.repeat_interleave(per_input),
        "predicted": pred_cf.reshape(-1),
        "valid": valid.reshape(-1),
        "l0": l0_distance(x, x_cf, tol, groups).reshape(-1),
        "l1": l1_distance(x, x_cf).reshape(-1),
        "l2": l2_distance(x, x_cf).reshape(-1),
    }
    return pd.DataFrame({name: values.cpu().numpy() for name, values in columns.items()})


def with_original_units(
    records: pd.DataFrame, x: Tensor, x_cf: Tensor, model_cf: Tensor, meta: TabularMeta
) -> pd.DataFrame:
    """``records`` (from :func:`counterfactual_records`) with each counterfactual's features in original
    units (one column per feature, named as in the raw table), its input's as ``factual:<feature>``, and the
    counterfactual as the model saw it, one ``model:<column>`` per encoded column.

    ``x`` and ``x_cf`` are the encoder's rows (see the module docstring), ``model_cf`` the counterfactuals in
    model space, shaped like ``x_cf``.
    """
    sets = _tabular_sets(x, x_cf, meta)
    count, per_input = sets.shape[:2]
    if len(records) != count * per_input or model_cf.shape != x_cf.shape:
        raise ValueError(
            f"{len(records)} records for {count * per_input} counterfactuals, and model_cf of shape "
            f"{tuple(model_cf.shape)} for x_cf of shape {tuple(x_cf.shape)}; give one record per "
            "counterfactual and the same counterfactuals in both spaces."
        )
    counterfactuals = decode_rows(sets.reshape(count * per_input, -1), meta)
    factuals = decode_rows(x, meta).iloc[np.repeat(np.arange(count), per_input)].reset_index(drop=True)
    model = pd.DataFrame(
        model_cf.detach().reshape(count * per_input, -1).cpu().numpy(),
        columns=[MODEL_PREFIX + name for name in meta.feature_names],
    )
    return pd.concat(
        [records.reset_index(drop=True), counterfactuals, factuals.add_prefix(FACTUAL_PREFIX), model], axis=1
    )


def save_counterfactuals(
    records: pd.DataFrame,
    run_dir: str | os.PathLike[str],
    x: Tensor | None = None,
    x_cf: Tensor | None = None,
) -> list[Path]:
    """Write ``records`` as ``counterfactuals.csv`` in ``run_dir``, and with ``x`` and ``x_cf`` (images, model
    space) also ``counterfactuals.pt``; each atomically. Returns the paths written.

    The ``.pt`` file is a dict of plain tensors, readable with ``torch.load(path, weights_only=True)``:
    every numeric column of :data:`RECORD_COLUMNS`, one entry per counterfactual (``valid`` bool, ids and
    classes int64, distances float64), ``x_cf`` (M, *shape) the counterfactuals and ``x`` (M, *shape) the
    input each one explains, row-aligned with the CSV.
    """
    run_dir = Path(run_dir)
    csv_path = run_dir / f"{RECORDS_NAME}.csv"
    write_atomically(csv_path, records.to_csv(index=False))
    if x is None or x_cf is None:
        return [csv_path]
    sets = counterfactual_sets(x, x_cf)
    per_input = sets.shape[1]
    if len(records) != sets.shape[0] * per_input:
        raise ValueError(
            f"{len(records)} records for {sets.shape[0] * per_input} counterfactuals; give one record each."
        )
    tensors = {name: torch.as_tensor(records[name].to_numpy()) for name in RECORD_COLUMNS}
    tensors["x_cf"] = sets.flatten(0, 1).detach().cpu().contiguous()
    tensors["x"] = x.detach().cpu().repeat_interleave(per_input, dim=0)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    tensor_path = run_dir / f"{RECORDS_NAME}.pt"
    write_bytes_atomically(tensor_path, buffer.getvalue())
    return [csv_path, tensor_path]


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


def _features(meta: TabularMeta) -> list[tuple[str, tuple[int, ...]]]:
    """Each feature of the raw table with its encoded columns, in column order: a continuous feature is
    one column, a categorical one its one-hot group."""
    found = [(meta.feature_names[column], (column,)) for column in meta.continuous]
    found += [
        (meta.feature_names[group[0]].partition("=")[0], tuple(group)) for group in meta.categorical_groups
    ]
    return sorted(found, key=lambda feature: feature[1][0])


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
