"""Rotation-angle regression on real MNIST digits: the image is rotated by θ, the target is θ in degrees.

The stand-in for SLURP's and CaR's regression tasks that the reference notes propose (no depth or flow data
offline): θ ~ U(−R, R) per image, R = ``data.rotation`` degrees (45 by default: beyond about 90° a 6 and a 9
become the same image turned, and the target stops being a function of the input). Rotation is bilinear
resampling about the image centre with zero (black) fill, written with ``torch.nn.functional.affine_grid``
and ``grid_sample``. Angles come from a generator seeded by (seed, split), so a seed gives the same images
in every process; ``data.train_rows`` / ``data.test_rows`` keep the first rows of MNIST's own splits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trustbench.data.arrays import ArrayDataset
from trustbench.data.loaders import named_generator


def rotate(images: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """`images` (N×C×H×W) each turned counter-clockwise by its angle in `degrees` (N,), black fill."""
    radians = degrees.to(images.dtype) * (math.pi / 180)
    cos, sin = radians.cos(), radians.sin()
    # affine_grid maps output coordinates to input ones, so the inverse rotation turns the picture by +θ
    # (y points down in image coordinates, hence the signs).
    theta = torch.stack(
        [
            torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
            torch.stack([sin, cos, torch.zeros_like(cos)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotated_mnist(
    mnist: ArrayDataset, rotation: float, train_rows: int, test_rows: int, seed: int
) -> ArrayDataset:
    """The regression set of the module docstring, targets standardised on the training angles."""
    if not 0 < rotation <= 180:
        raise ValueError(f"data.rotation must be in (0, 180] degrees; got {rotation}")
    parts = {}
    for split, images, rows in (("train", mnist.x_train, train_rows), ("test", mnist.x_test, test_rows)):
        chosen = images[:rows]
        generator = named_generator(seed, f"rotated_mnist/{split}")
        angles = (torch.rand(len(chosen), generator=generator) * 2 - 1) * rotation
        parts[split] = (rotate(chosen, angles), angles)
    mean, std = float(parts["train"][1].mean()), float(parts["train"][1].std())
    return ArrayDataset(
        name="rotated_mnist",
        kind="image",
        x_train=parts["train"][0],
        y_train=(parts["train"][1] - mean) / std,
        x_test=parts["test"][0],
        y_test=(parts["test"][1] - mean) / std,
        num_classes=1,
        task="regression",
        target_scale=(mean, std),
    )
