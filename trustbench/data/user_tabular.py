"""A tabular dataset from the user's CSV, encoded as the catalog's Adult, COMPAS and German credit are.

``data=files_tabular data.path=FILE.csv data.target=COLUMN`` with, in the data config:

- ``categorical``: columns one-hot encoded; ``continuous``: columns min-max scaled (null: every other
  column but the target and the split column);
- ``immutable`` / ``increase_only``: features counterfactual explainers may not change / may only grow;
- ``groups``: protected columns mapped to their privileged value, e.g. ``{sex: Male}``; each becomes a
  binary group (1 = privileged) for the fairness suite, stays a model input and is immutable, as in
  :mod:`trustbench.data.tabular`; ``protected`` names the one fairness methods train against;
- ``positive``: the target value of class 1 (the favourable outcome); null: the classes are the sorted
  distinct target values;
- ``test_column``: a column whose value ``test`` marks test rows (dropped from the features), else
  ``test_fraction`` of each class (default 0.2) goes to a fixed seeded test split.

Values are read as text (an empty cell is the category ""), so the encoding is :func:`tabular.encode`'s
exactly and the result carries the same :class:`TabularMeta`. A missing column or a non-numeric value in a
continuous column is one :class:`DatasetFileError` line naming the file and the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from trustbench.data.arrays import ArrayDataset
from trustbench.data.errors import DatasetFileError
from trustbench.data.formats import read_csv
from trustbench.data.tabular import TabularSpec, encode
from trustbench.data.user_files import TEST_FRACTION, seeded_test_rows


def _columns(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(column) for column in data.get(key) or ())


def _require(path: Path, frame: pd.DataFrame, columns: tuple[str, ...], key: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DatasetFileError(
            f"{path}: no column {missing[0]!r} (named in data.{key}); columns are {', '.join(frame.columns)}"
        )


def _continuous(path: Path, frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values)
        if bad.any():
            raise DatasetFileError(
                f"{path}: column {column!r} is continuous but row {int(bad.to_numpy().argmax()) + 2} holds "
                f"{frame[column][bad].iloc[0]!r}; list it in data.categorical or fix the value"
            )
        frame = frame.assign(**{column: values})
    return frame


def read_tabular_csv(data: Mapping[str, Any]) -> ArrayDataset:
    """The dataset the `files_tabular` config `data` describes (see the module docstring)."""
    path = Path(data["path"]).expanduser()
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file (set data.path to a .csv file)")
    frame = read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    target, test_column = str(data["target"]), data.get("test_column")
    groups = {str(column): str(value) for column, value in (data.get("groups") or {}).items()}
    categorical = _columns(data, "categorical")
    _require(path, frame, (target,), "target")
    _require(path, frame, (str(test_column),) if test_column else (), "test_column")
    _require(path, frame, categorical, "categorical")
    excluded = {target, str(test_column), *categorical}
    continuous = _columns(data, "continuous") or tuple(c for c in frame.columns if c not in excluded)
    _require(path, frame, continuous, "continuous")
    for key in ("immutable", "increase_only"):
        _require(path, frame, _columns(data, key), key)
    _require(path, frame, tuple(groups), "groups")
    frame = _continuous(path, frame, continuous)

    values = frame[target].astype(str)
    if data.get("positive") is not None:
        positive = str(data["positive"])
        if positive not in set(values):
            raise DatasetFileError(
                f"{path}: target {target!r} never takes the value {positive!r} (data.positive)"
            )
        class_names, labels = (f"not {positive}", positive), (values == positive).to_numpy(np.int64)
    else:
        class_names = tuple(sorted(set(values)))
        labels = values.map({name: i for i, name in enumerate(class_names)}).to_numpy(np.int64)
    if len(class_names) < 2:
        raise DatasetFileError(
            f"{path}: target {target!r} has one value only; a classifier needs two or more"
        )

    if test_column:
        is_test = (frame[str(test_column)].astype(str).str.lower() == "test").to_numpy()
    else:
        fraction = data.get("test_fraction")
        is_test = seeded_test_rows(labels, TEST_FRACTION if fraction is None else float(fraction))
    if is_test.all() or not is_test.any():
        raise DatasetFileError(f"{path}: the split leaves no {'train' if is_test.all() else 'test'} rows")
    spec = TabularSpec(
        continuous=continuous,
        categorical=categorical,
        immutable=tuple(dict.fromkeys([*_columns(data, "immutable"), *groups])),
        increase_only=_columns(data, "increase_only"),
    )
    train, test = frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)
    x_train, x_test, meta = encode(train, test, spec)
    group_of = {
        c: torch.from_numpy((frame[c].astype(str) == v).to_numpy(np.int64)) for c, v in groups.items()
    }
    mask = torch.from_numpy(is_test)
    y = torch.from_numpy(labels)
    return ArrayDataset(
        name=data["name"],
        kind="tabular",
        x_train=x_train,
        y_train=y[~mask],
        x_test=x_test,
        y_test=y[mask],
        num_classes=len(class_names),
        class_names=class_names,
        groups_train={c: g[~mask] for c, g in group_of.items()},
        groups_test={c: g[mask] for c, g in group_of.items()},
        tabular=meta,
    )
