"""OpenMax: the recalibration by hand on a two-class case, and the unknown probability on real MNIST."""

from __future__ import annotations

import math

import pytest
import torch
import xai_models
from scipy.stats import weibull_min
from sklearn.metrics import roc_auc_score

from trustbench.data.class_subset import keep_classes
from trustbench.methods.ood import Features, build
from trustbench.methods.ood.openmax import rank_weights


def test_rank_weights_follow_the_alpha_ranks() -> None:
    logits = torch.tensor([[0.5, 3.0, 1.0, 2.0]])
    assert rank_weights(logits, 3).tolist() == [[0.0, 1.0, 1 / 3, 2 / 3]]
    assert rank_weights(logits, 9).tolist() == [[0.25, 1.0, 0.5, 0.75]]  # alpha capped at K = 4


def test_two_class_score_by_hand() -> None:
    # Class 0's members lie at offsets 1..25 along axis 0 from (20, 0), so their mean is (33, 0) and their
    # distances to it are |offset - 13|, the largest five 10, 11, 11, 12, 12; class 1 likewise on axis 1.
    offsets = torch.arange(1.0, 26.0)[:, None]
    logits = torch.cat(
        [
            torch.tensor([20.0, 0.0]) + offsets * torch.tensor([1.0, 0.0]),
            torch.tensor([0.0, 20.0]) + offsets * torch.tensor([0.0, 1.0]),
        ]
    )
    labels = torch.cat([torch.zeros(25), torch.ones(25)]).long()
    detector = build("openmax", tail_size=5, alpha=1).fit(Features(logits=logits, labels=labels))
    # scipy's fit is an optimiser: distances a rounding apart give parameters ~1e-8 apart (hence rel=1e-6)
    shape, _, scale = weibull_min.fit([10.0, 11.0, 11.0, 12.0, 12.0], floc=0.0)
    v = [44.0, 2.0]  # top class 0, at distance sqrt(11² + 2²) from its mean: inside the fitted tail
    w = 1 - math.exp(-((math.dist(v, [33.0, 0.0]) / scale) ** shape))
    assert 0.2 < w < 0.8
    revised, unknown = [v[0] * (1 - w), v[1]], v[0] * w  # alpha = 1: only the top class is revised
    expected = 1 / (1 + math.exp(revised[0] - unknown) + math.exp(revised[1] - unknown))
    assert detector.score(Features(logits=torch.tensor([v]))).item() == pytest.approx(expected, rel=1e-6)


def test_too_few_correct_members_is_one_clear_error() -> None:
    logits = torch.eye(2).repeat(3, 1)
    with pytest.raises(ValueError, match="class 0 has 1 correctly classified training inputs"):
        build("openmax").fit(Features(logits=logits, labels=torch.tensor([0, 1, 1, 1, 1, 1])))


def test_held_out_digits_score_higher_than_known_ones_on_real_mnist() -> None:
    net, mnist = xai_models.mnist_lenet()
    # The LeNet knows all ten digits; treat 0-5 as known: fit on their training logits, score their test
    # images against the test images of 6-9, whose logits the detector never saw.
    known = keep_classes(mnist, [0, 1, 2, 3, 4, 5])
    with torch.no_grad():
        train = net(known.x_train[:6000])[:, :6]
        test, unknown = net(known.x_test[:2000])[:, :6], net(known.unknown_test[:2000])[:, :6]
    detector = build("openmax").fit(Features(logits=train, labels=known.y_train[:6000]))
    scores = torch.cat([detector.score(Features(logits=test)), detector.score(Features(logits=unknown))])
    auroc = roc_auc_score([0] * 2000 + [1] * 2000, scores.numpy())
    msp = -torch.cat([test, unknown]).softmax(dim=1).amax(dim=1)
    assert auroc > 0.8 and auroc == pytest.approx(
        roc_auc_score([0] * 2000 + [1] * 2000, msp.numpy()), abs=0.1
    )
