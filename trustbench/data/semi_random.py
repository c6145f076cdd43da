"""The W2reg paper's "semi-random" MNIST: a binary task with a protected group and a planted bias.

Risser et al. (JMIV 2022, and the authors' ``Get_n_Treat_MNIST_srt``): Y = 1 for digits 5–9, 0 for 0–4;
each image draws S ∈ {0, 1} with probability ½, and S = 0 images are rotated by 90° (``rot90`` over the
image axes, as the authors do). In the training split only, about 2/3 of the sevens with S = 0 are
relabelled Y = 0, so a classifier learns to refuse rotated sevens: a bias that the test labels (never
relabelled) expose as a lower selection rate and accuracy for S = 0. The draws come from a fixed seed,
so every machine gets the same dataset.
"""

from __future__ import annotations

import dataclasses

import torch

from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import named_generator

SEED = 20220101
RELABELLED_DIGIT = 7
RELABEL_PROBABILITY = 2 / 3


def _treat(
    images: torch.Tensor, digits: torch.Tensor, generator: torch.Generator, relabel: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Binary labels, S drawn per image, S = 0 images rotated; in training, the planted relabelling."""
    group = torch.randint(0, 2, (len(digits),), generator=generator)
    rotated = torch.where((group == 0).view(-1, 1, 1, 1), images.rot90(1, dims=(2, 3)), images)
    labels = (digits >= 5).long()
    if relabel:
        coin = torch.rand(len(digits), generator=generator) < RELABEL_PROBABILITY
        labels[(digits == RELABELLED_DIGIT) & (group == 0) & coin] = 0
    return rotated, labels, group


def semi_random_mnist(mnist: ArrayDataset) -> ArrayDataset:
    """The semi-random treatment of `mnist` (see the module docstring); group attribute ``s``."""
    x_train, y_train, s_train = _treat(mnist.x_train, mnist.y_train, named_generator(SEED, "train"), True)
    x_test, y_test, s_test = _treat(mnist.x_test, mnist.y_test, named_generator(SEED, "test"), False)
    return dataclasses.replace(
        mnist,
        name="mnist_semi_random",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=2,
        class_names=("digit 0-4", "digit 5-9"),
        groups_train={"s": s_train},
        groups_test={"s": s_test},
    )
