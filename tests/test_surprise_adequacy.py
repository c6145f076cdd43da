"""DeepGini and surprise adequacy (LSA, DSA, MDSA) on a real LeNet's MNIST traces, against hand-written
formulas and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xai_models
from scipy.special import logsumexp
from scipy.stats import gaussian_kde
from sklearn.covariance import EmpiricalCovariance

from trustbench.methods.ood.deepgini import DeepGini
from trustbench.methods.ood.detector import Features
from trustbench.methods.ood.surprise import DSA, LSA, MDSA


@pytest.fixture(scope="module")
def traces() -> tuple[Features, Features]:
    """Penultimate traces and logits of 2000 training and 200 test digits of the shared test LeNet."""
    net, dataset = xai_models.mnist_lenet()
    with torch.no_grad():
        train_hidden = net.features(dataset.x_train[: xai_models.TRAIN_ROWS])
        test_hidden = net.features(dataset.x_test[:200])
    train = Features(net.head(train_hidden).detach(), train_hidden, dataset.y_train[: xai_models.TRAIN_ROWS])
    return train, Features(net.head(test_hidden).detach(), test_hidden)


def test_deepgini_is_one_minus_the_sum_of_squared_probabilities():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])  # softmax (1/2, 1/2) and (3/4, 1/4)
    torch.testing.assert_close(DeepGini().score(Features(logits)), torch.tensor([0.5, 1 - 9 / 16 - 1 / 16]))


def test_mdsa_is_sklearns_squared_mahalanobis_within_the_predicted_class(traces):
    train, test = traces
    scores = MDSA().fit(train).score(test)
    train_class, test_class = train.logits.argmax(dim=1), test.logits.argmax(dim=1)
    for c in test_class.unique():
        reference = EmpiricalCovariance().fit(train.features[train_class == c].double().numpy())
        expected = reference.mahalanobis(test.features[test_class == c].double().numpy())
        np.testing.assert_allclose(scores[test_class == c].numpy(), expected, rtol=1e-6)


def test_lsa_is_the_negative_log_of_a_scott_bandwidth_gaussian_kde_of_the_predicted_class(traces):
    train, test = traces
    scores = LSA().fit(train).score(test)
    train_class, test_class = train.logits.argmax(dim=1), test.logits.argmax(dim=1)
    for c in test_class.unique()[:3]:
        points = train.features[train_class == c].double().numpy()
        points = points[:, points.var(axis=0, ddof=1) >= 1e-5]
        kept = train.features[train_class == c].double().var(dim=0) >= 1e-5
        queries = test.features[test_class == c].double()[:, kept].numpy()
        n, d = points.shape
        bandwidth = np.cov(points.T) * n ** (-2.0 / (d + 4))  # Scott's factor, squared
        inverse = np.linalg.inv(bandwidth)
        _, log_det = np.linalg.slogdet(2 * np.pi * bandwidth)
        differences = queries[:, None, :] - points[None, :, :]
        exponents = -0.5 * np.einsum("qnd,de,qne->qn", differences, inverse, differences)
        expected = -(logsumexp(exponents, axis=1) - math.log(n) - 0.5 * log_det)
        np.testing.assert_allclose(scores[test_class == c].numpy(), expected, rtol=1e-6)
        np.testing.assert_allclose(
            scores[test_class == c].numpy(), -gaussian_kde(points.T).logpdf(queries.T), rtol=1e-8
        )


def test_lsa_names_a_singular_kernel_covariance_in_one_line(traces):
    train, _ = traces
    doubled = torch.cat([train.features, train.features[:, :1] * 2], dim=1)  # a unit twice another
    with pytest.raises(ValueError, match=r"^LSA's KDE covariance .* is singular .*; raise min_variance"):
        LSA().fit(Features(train.logits, doubled, train.labels))


def test_dsa_divides_the_distance_to_the_nearest_same_class_trace_by_that_traces_distance_to_another_class(
    traces,
):
    train, test = traces
    detector = DSA(seed=0).fit(train)
    kept = torch.randperm(len(train.logits), generator=torch.Generator().manual_seed(0))[
        : len(train.logits) // 3
    ]
    points, point_class = train.features[kept].double().numpy(), train.logits[kept].argmax(dim=1).numpy()
    queries, query_class = test.features.double().numpy(), test.logits.argmax(dim=1).numpy()
    expected = []
    for query, c in zip(queries, query_class, strict=True):
        same = points[point_class == c]
        nearest = same[np.linalg.norm(same - query, axis=1).argmin()]
        dist_a = np.linalg.norm(nearest - query)
        dist_b = np.linalg.norm(points[point_class != c] - nearest, axis=1).min()
        expected.append(dist_a / dist_b)
    np.testing.assert_allclose(detector.score(test).numpy(), expected, rtol=1e-6)
    # dist_b of the anchors the first call found is kept: a later call on part of the inputs agrees (to
    # the last bits matrix products of other block shapes change)
    part = Features(test.logits[50:120], test.features[50:120])
    torch.testing.assert_close(detector.score(part), detector.score(test)[50:120], rtol=1e-12, atol=0)
    fresh = DSA(seed=0).fit(train)
    torch.testing.assert_close(fresh.score(part), detector.score(part), rtol=1e-12, atol=0)


def test_surprise_grows_from_test_digits_to_uniform_noise(traces):
    """Not a reference check: the property the supervisors are for, on the same real LeNet."""
    net, _ = xai_models.mnist_lenet()
    train, test = traces
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hidden = net.features(noise)
        ood = Features(net.head(hidden), hidden)
    for detector in (LSA(), MDSA(), DSA()):
        detector.fit(train)
        assert detector.score(ood).median() > detector.score(test).median(), detector.name
