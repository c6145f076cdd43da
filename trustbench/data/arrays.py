"""The in-memory form every dataset takes once read from disk.

A reader turns files into one :class:`ArrayDataset`; everything downstream (splits, loaders, OOD sets,
fairness groups, counterfactual constraints) works on these tensors and never touches files again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch


@dataclass(frozen=True)
class TabularMeta:
    """What a tabular dataset's columns mean, after encoding.

    Continuous features are min-max scaled to [0, 1] with the training split's range (`ranges` holds the
    raw min and max so values can be shown in original units). Each categorical feature is a one-hot group:
    a list of column indices of which exactly one is 1. `immutable` names features no explanation may
    change; `increase_only` names features that may only grow (e.g. age).
    """

    feature_names: tuple[str, ...]
    continuous: tuple[int, ...]
    categorical_groups: tuple[tuple[int, ...], ...]
    ranges: dict[str, tuple[float, float]]
    immutable: tuple[str, ...] = ()
    increase_only: tuple[str, ...] = ()


@dataclass(frozen=True)
class ArrayDataset:
    """One dataset in memory, with its official train/test split.

    Images are float32 N×C×H×W in [0, 1]; tabular rows are float32 N×D. Labels are int64 class indices;
    for `task` "regression" they are float32 targets standardised with the training split's mean and std,
    kept in `target_scale` so metrics are reported in the target's own units (`num_classes` is then 1).
    `groups_*` holds protected attributes (e.g. ``{"sex": ..., "race": ...}``) as int64 tensors aligned
    with the rows; they are never model inputs unless the dataset's encoding says so. `annotations_*`
    (images with ground-truth relevance, e.g. decoy MNIST) hold per-pixel int8 N×H×W labels: 1 relevant,
    −1 irrelevant, 0 unknown; what explanation-guided methods train on and the annotations suite scores.
    `unknown_test` holds the test images of classes held out of an open-set recognition dataset (see
    :mod:`trustbench.data.class_subset`), the ``unknown`` OOD set; None for every other dataset.
    """

    name: str
    kind: Literal["image", "tabular"]
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    class_names: tuple[str, ...] | None = None
    groups_train: dict[str, torch.Tensor] = field(default_factory=dict)
    groups_test: dict[str, torch.Tensor] = field(default_factory=dict)
    tabular: TabularMeta | None = None
    task: Literal["classification", "regression"] = "classification"
    target_scale: tuple[float, float] | None = None
    annotations_train: torch.Tensor | None = None
    annotations_test: torch.Tensor | None = None
    unknown_test: torch.Tensor | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1, 28, 28) or (104,)."""
        return tuple(self.x_train.shape[1:])
