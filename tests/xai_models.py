"""Real MNIST and a LeNet trained for one epoch on 2000 of its digits, shared by the explanations family's
tests (each read or trained once per test process)."""

from __future__ import annotations

import functools

import torch
from real_data import real
from torch.nn import functional as F

from trustbench.backbones.lenet import LeNet
from trustbench.data.arrays import ArrayDataset

TRAIN_ROWS = 2000


def mnist() -> ArrayDataset:
    """Real MNIST, read once per test process (tests/real_data.py)."""
    return real("mnist")


@functools.cache
def mnist_lenet() -> tuple[LeNet, ArrayDataset]:
    """The trained network (evaluation mode, about 90 % test accuracy) and the MNIST dataset, trained once
    per test process; callers must not change either."""
    dataset = mnist()
    torch.manual_seed(0)
    net = LeNet(dataset.input_shape, dataset.num_classes)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    order = torch.randperm(TRAIN_ROWS, generator=torch.Generator().manual_seed(0))
    for rows in order.split(50):
        optimizer.zero_grad()
        F.cross_entropy(net(dataset.x_train[rows]), dataset.y_train[rows]).backward()
        optimizer.step()
    return net.eval(), dataset
