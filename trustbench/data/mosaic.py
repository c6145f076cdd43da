"""Digit mosaics with concept annotations, made in memory from real MNIST digits, for Greybox XAI.

Each 28×28 image is a 2×2 grid of 14×14 cells; each cell holds, with probability 3/4, an MNIST digit
shrunk by 2×2 averaging (training mosaics from the training digits, test mosaics from the test digits),
else nothing. The concepts are the presence of each digit 0..9 anywhere in the image (10 binary labels,
the "knowledge base" of Bennetot et al.'s Greybox XAI). The class is a logical rule over two of them:
2·[a 0 is present] + [a 1 is present] (0: neither, 1: a one only, 2: a zero only, 3: both); the other
digits are distractors. Draws come from a fixed seed, the same on every machine.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import named_generator

SEED = 20230301
TRAIN_MOSAICS, TEST_MOSAICS = 20000, 4000
FILLED = 0.75
CONCEPTS = 10
CLASS_NAMES = ("no 0, no 1", "a 1, no 0", "a 0, no 1", "a 0 and a 1")


def mosaic_dataset(mnist: ArrayDataset) -> ArrayDataset:
    """Mosaics of `mnist`'s digits with their concept annotations (N×10 int8) and rule labels."""
    generator = named_generator(SEED, "mosaic")
    x_train, c_train = _mosaics(mnist.x_train, mnist.y_train, TRAIN_MOSAICS, generator)
    x_test, c_test = _mosaics(mnist.x_test, mnist.y_test, TEST_MOSAICS, generator)
    return dataclasses.replace(
        mnist,
        name="digit_mosaic",
        x_train=x_train,
        y_train=rule(c_train),
        x_test=x_test,
        y_test=rule(c_test),
        num_classes=len(CLASS_NAMES),
        class_names=CLASS_NAMES,
        annotations_train=c_train,
        annotations_test=c_test,
    )


def rule(concepts: Tensor) -> Tensor:
    """The class of each mosaic from its concepts: 2·[0 present] + [1 present]."""
    return (2 * concepts[:, 0] + concepts[:, 1]).long()


def _mosaics(digits: Tensor, labels: Tensor, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    small = F.avg_pool2d(digits, 2)  # N×1×14×14
    chosen = torch.randint(0, len(digits), (count, 4), generator=generator)
    filled = torch.rand(count, 4, generator=generator) < FILLED
    cells = small[chosen] * filled[:, :, None, None, None]  # count×4×1×14×14
    top = torch.cat([cells[:, 0], cells[:, 1]], dim=3)
    bottom = torch.cat([cells[:, 2], cells[:, 3]], dim=3)
    images = torch.cat([top, bottom], dim=2)
    concepts = torch.zeros(count, CONCEPTS, dtype=torch.int8)
    present = labels[chosen]
    for cell in range(4):
        rows = filled[:, cell].nonzero().squeeze(1)
        concepts[rows, present[rows, cell]] = 1
    return images, concepts
