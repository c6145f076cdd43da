"""A shallow decision tree that describes a flagged group of tabular test rows in the raw table's units.

The characterisation step of "unknown unknowns" (Galici et al., LAK 2023; the tree-on-errors reading of
Lakkaraju et al., "Identifying Unknown Unknowns in the Open World", AAAI 2017): scikit-learn's
``DecisionTreeClassifier`` (depth 3 by default, at least 1 % of the rows per leaf, classes weighted
``balanced`` because the group is rare) learns "in the group" from the features, continuous ones unscaled
to original units (:meth:`trustbench.stress.features.TabularFeature.original`) and each category as its
0/1 indicator ``feature=category``, so the printed rules read "age <= 27.5", "sex=Female > 0.5". The rows
the tree predicts in the group are its description of the group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.tree import DecisionTreeClassifier, export_text
from torch import Tensor

from trustbench.data.arrays import TabularMeta
from trustbench.stress.features import tabular_features

MIN_LEAF_SHARE = 0.01


@dataclass(frozen=True)
class GroupDescription:
    """The fitted tree's rules as text and which rows it assigns to the group."""

    rules: str
    flagged: np.ndarray  # bool per row


def original_unit_columns(x: Tensor, meta: TabularMeta) -> tuple[np.ndarray, list[str]]:
    """Encoded rows as a float matrix with continuous features in raw units and one-hot columns as 0/1."""
    values = x.detach().double().cpu().numpy().copy()
    continuous = tuple(meta.feature_names[column] for column in meta.continuous)
    for feature in tabular_features(meta, x, continuous):
        values[:, feature.columns[0]] = feature.original(feature.values).numpy()
    return values, list(meta.feature_names)


def describe_group(
    x: Tensor, meta: TabularMeta, in_group: np.ndarray, depth: int, seed: int
) -> GroupDescription:
    """Fit the module's tree to `in_group` (bool per row of `x`) and return its rules and flagged rows."""
    values, names = original_unit_columns(x, meta)
    tree = DecisionTreeClassifier(
        max_depth=depth,
        min_samples_leaf=max(1, round(MIN_LEAF_SHARE * len(values))),
        class_weight="balanced",
        random_state=seed,
    ).fit(values, in_group)
    rules = export_text(tree, feature_names=names, class_names=["other", "group"], decimals=2)
    return GroupDescription(rules, tree.predict(values).astype(bool))
