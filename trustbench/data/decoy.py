"""Decoy MNIST / Fashion-MNIST (Ross, Hughes & Doshi-Velez, "Right for the Right Reasons", IJCAI 2017),
made in memory from the real images, with a per-pixel annotation of what is relevant.

Every image gets a `PATCH`×`PATCH` square in a corner drawn at random. In the training split its shade
is a function of the label, 1 − 0.1·y (Ross et al.'s 255 − 25·y on [0, 1]), so the square alone
predicts the class; in the test split the shade is that of a random other label, so a model that learnt
the square fails there (the decoy-free test set). Draws come from a fixed seed, the same on every machine.

The annotation (int8, N×H×W) is RES's A ∈ {−1, 0, 1} (Gao et al., KDD 2022): −1 on the decoy square
(irrelevant), 1 on the object (pixels above 0.5 of the original image, grown by one pixel), 0 unknown.
:func:`degrade_annotations` makes the training annotations incomplete (`keep` < 1: each annotated pixel
is kept with that probability, else unknown) or inaccurate (`noise` > 0: that share of the images has
its annotation shifted by up to 4 pixels), as RES studies; test annotations stay exact for scoring.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import named_generator

SEED = 20170401
PATCH = 4
MAX_SHIFT = 4


def decoy_dataset(base: ArrayDataset) -> ArrayDataset:
    """`base` (1-channel images in [0, 1]) with decoy squares and annotations, named decoy_<base>."""
    generator = named_generator(SEED, base.name)
    x_train, a_train = _with_decoys(base.x_train, base.y_train, generator, label_shade=True)
    x_test, a_test = _with_decoys(base.x_test, base.y_test, generator, label_shade=False)
    return dataclasses.replace(
        base,
        name=f"decoy_{base.name}",
        x_train=x_train,
        x_test=x_test,
        annotations_train=a_train,
        annotations_test=a_test,
    )


def _with_decoys(
    images: Tensor, labels: Tensor, generator: torch.Generator, label_shade: bool
) -> tuple[Tensor, Tensor]:
    n, _, height, width = images.shape
    corner = torch.randint(0, 4, (n,), generator=generator)
    shade_label = labels if label_shade else (labels + torch.randint(1, 10, (n,), generator=generator)) % 10
    shade = 1.0 - 0.1 * shade_label.float()
    rows = torch.where(corner < 2, 0, height - PATCH)
    cols = torch.where(corner % 2 == 0, 0, width - PATCH)
    grid_r = torch.arange(height).view(1, -1, 1)
    grid_c = torch.arange(width).view(1, 1, -1)
    square = (
        (grid_r >= rows.view(-1, 1, 1))
        & (grid_r < rows.view(-1, 1, 1) + PATCH)
        & (grid_c >= cols.view(-1, 1, 1))
        & (grid_c < cols.view(-1, 1, 1) + PATCH)
    )
    decoyed = torch.where(square[:, None], shade.view(-1, 1, 1, 1), images)
    grown = F.max_pool2d((images > 0.5).float(), 3, stride=1, padding=1)[:, 0] > 0
    annotation = torch.zeros(n, height, width, dtype=torch.int8)
    annotation[grown] = 1
    annotation[square] = -1
    return decoyed, annotation


def degrade_annotations(dataset: ArrayDataset, keep: float, noise: float, seed: int) -> ArrayDataset:
    """The dataset with incomplete (`keep` < 1) or shifted (`noise` > 0) training annotations."""
    if not 0 < keep <= 1 or not 0 <= noise <= 1:
        raise ValueError(f"data.annotations needs 0 < keep <= 1 and 0 <= noise <= 1; got {keep}, {noise}")
    if dataset.annotations_train is None:
        raise ValueError(f"data.annotations degrades annotations, but {dataset.name} has none")
    generator = named_generator(seed, "annotations")
    annotation = dataset.annotations_train.clone()
    dropped = torch.rand(annotation.shape, generator=generator) >= keep
    annotation[dropped] = 0
    shifted = torch.rand(len(annotation), generator=generator) < noise
    offsets = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (len(annotation), 2), generator=generator)
    for dy, dx in offsets[shifted].unique(dim=0).tolist():  # one roll per distinct shift, not per image
        rows = shifted & (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
        annotation[rows] = annotation[rows].roll((dy, dx), dims=(1, 2))
    return dataclasses.replace(dataset, annotations_train=annotation)
