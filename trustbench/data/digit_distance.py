"""Dense regression on real MNIST digits: each pixel's distance to the digit's stroke.

The per-pixel stand-in for depth in SLURP's and CaR's dense setting: the input is the digit, the target a
map of the same size whose value at each pixel is the Euclidean distance, in pixels, to the nearest stroke
pixel (intensity ≥ 0.5; 0 on the stroke), computed with ``scipy.ndimage.distance_transform_edt``. The
target is a deterministic function of the image but not a local one: far from the stroke the network has
to see the whole digit, and that is where its errors, and a good uncertainty, grow. ``data.train_rows`` /
``data.test_rows`` keep the first rows of MNIST's own splits; targets are standardised on the training maps.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from trustbench.data.arrays import ArrayDataset

STROKE = 0.5


def stroke_distance(images: torch.Tensor) -> torch.Tensor:
    """N×1×H×W images in [0, 1] → N×H×W distances (pixels) to the nearest pixel ≥ :data:`STROKE`."""
    maps = [distance_transform_edt(image[0].numpy() < STROKE) for image in images]
    return torch.from_numpy(np.stack(maps)).float()


def digit_distance(mnist: ArrayDataset, train_rows: int, test_rows: int) -> ArrayDataset:
    """The dense regression set of the module docstring."""
    x_train, x_test = mnist.x_train[:train_rows], mnist.x_test[:test_rows]
    y_train, y_test = stroke_distance(x_train), stroke_distance(x_test)
    mean, std = float(y_train.mean()), float(y_train.std())
    return ArrayDataset(
        name="mnist_distance",
        kind="image",
        x_train=x_train,
        y_train=(y_train - mean) / std,
        x_test=x_test,
        y_test=(y_test - mean) / std,
        num_classes=1,
        task="regression",
        target_scale=(mean, std),
    )
