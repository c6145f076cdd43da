"""Which quantity of the test rows each stress moves: a continuous feature, a category's share, a patch.

A tabular feature is named as in the data's encoding: a continuous feature by its name (``age``), a
category of a one-hot group as ``feature=category`` (``sex=Female``): its stressed quantity is the
category's indicator, whose mean is its share. Values are in model space (continuous features min-max
scaled); ``low`` and ``width`` give original units, low + value · width. Images are stressed patch by
patch: the quantity is a patch's mean intensity over its pixels and channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from trustbench.data.arrays import TabularMeta
from trustbench.errors import ConfigError


@dataclass(frozen=True)
class TabularFeature:
    """One stressed tabular quantity: its name in keys, its encoded columns and its values per test row."""

    name: str
    columns: tuple[int, ...]  # the continuous column, or the whole one-hot group of a category
    category: int | None  # position of the category within `columns`; None for a continuous feature
    values: Tensor  # float64 per test row: the scaled feature, or the category's 0/1 indicator
    low: float
    width: float
    immutable: bool

    def original(self, value: Tensor) -> Tensor:
        """Values of the quantity in the raw table's units (a share stays a share), rounded to the decimals
        the float32 encoding resolves, so that a stress to age 64 reads 64, not 63.999999."""
        decimals = math.floor(-math.log10(self.width * torch.finfo(torch.float32).eps))
        return (self.low + value * self.width).round(decimals=decimals)


def tabular_features(meta: TabularMeta, x: Tensor, names: tuple[str, ...]) -> list[TabularFeature]:
    """The named features of encoded rows ``x``; ``("all",)`` names every continuous feature and category."""
    continuous = [meta.feature_names[i] for i in meta.continuous]
    if names == ("all",):
        names = (*continuous, *(meta.feature_names[i] for group in meta.categorical_groups for i in group))
    features = []
    for name in names:
        base, _, category = str(name).partition("=")
        immutable = base in meta.immutable
        if not category and base in continuous:
            column = meta.feature_names.index(base)
            low, high = meta.ranges[base]
            width = high - low if high > low else 1.0  # the encoder's convention for a constant feature
            values = x[:, column].to(torch.float64)
            features.append(TabularFeature(base, (column,), None, values, low, width, immutable))
            continue
        group = next(
            (g for g in meta.categorical_groups if meta.feature_names[g[0]].startswith(f"{base}=")), None
        )
        if group is None:
            raise ConfigError(
                f"data.stress.features names {name!r}, which is not a feature of this data; continuous "
                f"features: {', '.join(continuous)}; categories are named feature=category, e.g. "
                f"{meta.feature_names[meta.categorical_groups[0][0]] if meta.categorical_groups else '-'}"
            )
        categories = [meta.feature_names[i].partition("=")[2] for i in group]
        if category not in categories:
            raise ConfigError(
                f"data.stress.features names {name!r}: stress the share of one category of {base}, one of "
                f"{', '.join(f'{base}={c}' for c in categories)}"
            )
        position = categories.index(category)
        values = x[:, group[position]].to(torch.float64)
        features.append(TabularFeature(str(name), tuple(group), position, values, 0.0, 1.0, immutable))
    return features


def patch_means(images: Tensor, patch: int) -> Tensor:
    """Mean intensity of each ``patch`` × ``patch`` square of each image (N × C × H × W → N × H/p × W/p)."""
    height, width = images.shape[-2:]
    if height % patch or width % patch:
        raise ConfigError(
            f"data.stress.patch={patch} does not divide the {height}×{width} images; choose a divisor of both"
        )
    pooled = torch.nn.functional.avg_pool2d(images.to(torch.float64), kernel_size=patch)
    return pooled.mean(dim=1)
