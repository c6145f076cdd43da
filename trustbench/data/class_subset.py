"""Open-set recognition data: train and test on K known classes, hold the others out as the unknowns.

``data.known_classes=[2, 4, 5, 9, 8, 3]`` (or a named split, ``data=osr_mnist data.class_split=1``) keeps
only those classes' rows in the train and test splits and relabels them 0..K-1 in the listed order (the
first listed class becomes label 0), so the classifier has K outputs. The test images of every other
class are kept aside as the OOD set named ``unknown`` (:data:`UNKNOWN_SET`): the open set of the OSR
protocol (Neal et al., ECCV 2018; Vaze et al., ICLR 2022), drawn from the same dataset, so only the
semantics differ from the known test images. With one known class it is a one-class novelty task
(``data=novelty_mnist``): the model learns one class, every other class is novel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from trustbench.data.arrays import ArrayDataset

UNKNOWN_SET = "unknown"
"""The OOD set of the held-out classes' test images, in `data.ood` and `data.ood_benchmark`."""


def check_known_classes(known: Sequence[int], num_classes: int, dataset: str) -> list[int]:
    """`known` as ints; ValueError unless it names distinct classes and leaves at least one out."""
    classes = [int(label) for label in known]
    if len(set(classes)) != len(classes) or not all(0 <= label < num_classes for label in classes):
        raise ValueError(
            f"data.known_classes={classes} must be distinct class indices in [0, {num_classes}) of {dataset}"
        )
    if not 1 <= len(classes) < num_classes:
        raise ValueError(
            f"data.known_classes={classes} keeps {len(classes)} of {dataset}'s {num_classes} classes; keep "
            f"at least 1 and leave at least 1 out as the unknowns"
        )
    return classes


def keep_classes(dataset: ArrayDataset, known: Sequence[int]) -> ArrayDataset:
    """`dataset` restricted to the `known` classes, relabelled 0..K-1 in the order given, with the other
    classes' test images as `unknown_test` (see the module doc)."""
    if dataset.task != "classification":
        raise ValueError(
            f"data.known_classes needs a classification dataset, but {dataset.name} is regression"
        )
    classes = check_known_classes(known, dataset.num_classes, dataset.name)
    relabel = torch.full((dataset.num_classes,), -1, dtype=torch.long)
    relabel[classes] = torch.arange(len(classes))
    train_rows = relabel[dataset.y_train] >= 0
    test_rows = relabel[dataset.y_test] >= 0
    names = dataset.class_names
    annotations = dataset.annotations_train, dataset.annotations_test
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[train_rows],
        y_train=relabel[dataset.y_train[train_rows]],
        x_test=dataset.x_test[test_rows],
        y_test=relabel[dataset.y_test[test_rows]],
        num_classes=len(classes),
        class_names=None if names is None else tuple(names[label] for label in classes),
        groups_train={key: value[train_rows] for key, value in dataset.groups_train.items()},
        groups_test={key: value[test_rows] for key, value in dataset.groups_test.items()},
        annotations_train=None if annotations[0] is None else annotations[0][train_rows],
        annotations_test=None if annotations[1] is None else annotations[1][test_rows],
        unknown_test=dataset.x_test[~test_rows],
    )


def configured_known_classes(data: Mapping[str, Any]) -> list[int] | None:
    """The known classes a data config asks for: `known_classes` when set, else ``class_splits[class_split]``
    (configs/data/osr_*.yaml, novelty_*.yaml), else None (every class is known)."""
    if data.get("known_classes"):
        return [int(label) for label in data["known_classes"]]
    splits = data.get("class_splits")
    if not splits:
        return None
    split = data.get("class_split")
    if split not in splits:
        raise ValueError(f"data.class_split={split!r} is not one of this dataset's splits {sorted(splits)}")
    return [int(label) for label in splits[split]]
