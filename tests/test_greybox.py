"""Greybox XAI on digit mosaics made from real MNIST digits: the concepts and the rule of the data, and the
two-part model's loss and prediction."""

from __future__ import annotations

import functools

import pytest
import torch
from real_data import real
from torch.nn import functional as F

from trustbench.backbones.lenet import LeNet
from trustbench.data.mosaic import CLASS_NAMES, mosaic_dataset, rule
from trustbench.methods.explanations.greybox import Greybox


@pytest.fixture(scope="module")
def mosaics():
    return mosaic_dataset(real("mnist"))


def test_the_class_is_the_rule_over_the_concepts_and_every_class_occurs(mosaics) -> None:
    assert torch.equal(
        mosaics.y_test, 2 * mosaics.annotations_test[:, 0].long() + mosaics.annotations_test[:, 1]
    )
    assert mosaics.num_classes == len(CLASS_NAMES) == 4
    shares = torch.bincount(mosaics.y_train, minlength=4).float() / len(mosaics.y_train)
    assert bool((shares > 0.05).all())  # measured 0.54, 0.19, 0.19, 0.07
    assert rule(torch.tensor([[1, 1, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=torch.int8)).item() == 3


def test_a_mosaic_without_digits_is_black_and_has_no_concepts(mosaics) -> None:
    empty = mosaics.annotations_train.sum(dim=1) == 0
    assert bool(empty.any())  # a quarter of the cells are empty: about 1 in 256 mosaics has none
    assert float(mosaics.x_train[empty].abs().max()) == 0.0
    assert float(mosaics.x_train[~empty].flatten(1).amax(1).min()) > 0.3


def test_greybox_learns_concepts_from_the_network_and_the_rule_from_the_annotations(mosaics) -> None:
    torch.manual_seed(0)
    model = Greybox(LeNet((1, 28, 28), 4), 4, functools.partial(torch.optim.SGD, lr=0.05), concepts=10)
    x, y, concepts = mosaics.x_train[:32], mosaics.y_train[:32], mosaics.annotations_train[:32]
    loss = model.guided_loss(x, y, concepts)
    logits = model.concept_logits(x)
    expected = F.binary_cross_entropy_with_logits(logits, concepts.float(), reduction="sum") / 32
    expected = expected + F.cross_entropy(model.regression(concepts.float()), y)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert model.regression.weight.grad.abs().sum() > 0 and model.concept_head.weight.grad.abs().sum() > 0
    probs = model.predict(x).probs
    assert probs.shape == (32, 4) and torch.allclose(probs.sum(dim=1), torch.ones(32))
