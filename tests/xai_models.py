"""A LeNet trained for one epoch on 2000 real MNIST digits (tests/real_data.py), shared by the explanations
family's tests (trained once per test process)."""

from __future__ import annotations

import functools

import torch
from real_data import real
from torch.nn import functional as F

from trustbench.backbones.lenet import LeNet
from trustbench.data.arrays import ArrayDataset

TRAIN_ROWS = 2000


@functools.cache
def mnist_lenet() -> tuple[LeNet, ArrayDataset]:
    """The trained network (evaluation mode, about 90 % test accuracy) and the MNIST dataset, trained once
    per test process; callers must not change either."""
    dataset = real("mnist")
    torch.manual_seed(0)
    net = LeNet(dataset.input_shape, dataset.num_classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    order = torch.randperm(TRAIN_ROWS, generator=torch.Generator().manual_seed(0))
    for rows in order.split(50):
        optimizer.zero_grad()
        F.cross_entropy(net(dataset.x_train[rows]), dataset.y_train[rows]).backward()
        optimizer.step()
    return net.eval(), dataset
