"""OOD detector scores equal their definitions: hand-computed values, sklearn/numpy references, autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as kl_divergence
from sklearn.covariance import EmpiricalCovariance
from torch import Tensor, nn

from trustbench.backbones.mlp import MLP
from trustbench.methods.ood import (
    ASH,
    KNN,
    MSP,
    ODIN,
    Energy,
    Entropy,
    Features,
    GradNorm,
    KLMatching,
    Mahalanobis,
    MaxLogit,
    ReAct,
    RelativeMahalanobis,
    ViM,
)
from trustbench.methods.ood.ash import activation_shaping


def gaussian_classes(num_classes: int = 3, per_class: int = 60, dim: int = 5, seed: int = 0) -> Features:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    centres = 3 * torch.randn(num_classes, dim, generator=generator, dtype=torch.float64)
    mixing = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    noise = torch.randn(len(labels), dim, generator=generator, dtype=torch.float64)
    features = centres[labels] + noise @ mixing
    return Features(logits=torch.zeros(len(labels), num_classes), features=features, labels=labels)


def random_features(n: int, dim: int, seed: int, dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_msp_maxlogit_and_entropy_on_hand_computed_logits() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0, 0.0]])
    data = Features(logits=logits)
    torch.testing.assert_close(MSP().score(data), torch.tensor([-0.25, -0.5]))
    torch.testing.assert_close(MaxLogit().score(data), torch.tensor([0.0, -math.log(3.0)]))
    expected_entropy = [math.log(4), -(0.5 * math.log(0.5) + 3 * (1 / 6) * math.log(1 / 6))]
    torch.testing.assert_close(Entropy().score(data), torch.tensor(expected_entropy))


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_energy_is_minus_temperature_times_logsumexp(temperature: float) -> None:
    logits = random_features(20, 6, seed=0, dtype=torch.float32)
    expected = -temperature * torch.logsumexp(logits / temperature, dim=1)
    torch.testing.assert_close(Energy(temperature).score(Features(logits=logits)), expected)


def test_mahalanobis_matches_sklearn_on_class_centred_features() -> None:
    train, test = gaussian_classes(seed=0), gaussian_classes(seed=1)
    x, y = train.features.numpy(), train.labels.numpy()
    means = np.stack([x[y == c].mean(axis=0) for c in range(3)])
    reference = EmpiricalCovariance().fit(x - means[y])
    expected = np.min([reference.mahalanobis(test.features.numpy() - m) for m in means], axis=0)
    scores = Mahalanobis().fit(train).score(test)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_relative_mahalanobis_subtracts_the_background_gaussian_distance() -> None:
    train, test = gaussian_classes(seed=0), gaussian_classes(seed=1)
    x, y, t = train.features.numpy(), train.labels.numpy(), test.features.numpy()
    means = np.stack([x[y == c].mean(axis=0) for c in range(3)])
    tied = EmpiricalCovariance().fit(x - means[y])
    background = EmpiricalCovariance().fit(x)  # mahalanobis() measures from its fitted location, the mean
    relative = [tied.mahalanobis(t - m) - background.mahalanobis(t) for m in means]
    scores = RelativeMahalanobis().fit(train).score(test)
    np.testing.assert_allclose(scores.numpy(), np.min(relative, axis=0), rtol=1e-4, atol=1e-4)


def test_knn_faiss_search_equals_brute_force() -> None:
    bank, queries = random_features(203, 8, seed=0), random_features(57, 8, seed=1)
    k = 5
    knn = KNN(k=k).fit(Features(logits=bank, features=bank))
    unit = torch.nn.functional.normalize
    expected = torch.cdist(unit(queries, dim=1), unit(bank, dim=1)).sort(dim=1).values[:, k - 1]
    scores = knn.score(Features(logits=queries, features=queries))  # faiss computes in float32
    torch.testing.assert_close(scores, expected.float(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_gradnorm_closed_form_equals_autograd(temperature: float) -> None:
    torch.manual_seed(0)
    head = nn.Linear(6, 4).double()
    features = random_features(10, 6, seed=2)
    expected = []
    for f in features:
        head.zero_grad()
        log_p = torch.log_softmax(head(f[None]) / temperature, dim=1)
        uniform = torch.full_like(log_p, 1 / 4)
        torch.nn.functional.kl_div(log_p, uniform, reduction="sum").backward()
        expected.append(-head.weight.grad.abs().sum())
    with torch.no_grad():
        scores = GradNorm(temperature).score(Features(logits=head(features), features=features))
    torch.testing.assert_close(scores, torch.stack(expected))


def small_mlp() -> MLP:
    torch.manual_seed(0)
    return MLP(input_shape=(6,), num_classes=3, hidden_sizes=(8,)).eval()


def test_odin_without_perturbation_at_unit_temperature_is_msp() -> None:
    model, x = small_mlp(), random_features(16, 6, seed=3, dtype=torch.float32)
    with torch.no_grad():
        expected = MSP().score(Features(logits=model(x)))
    torch.testing.assert_close(ODIN(temperature=1.0, noise=0.0).score_inputs(model, x), expected)


def test_odin_perturbation_raises_the_predicted_class_probability() -> None:
    model, x = small_mlp(), random_features(64, 6, seed=4, dtype=torch.float32)
    with torch.no_grad():
        unperturbed = MSP().score(Features(logits=model(x)))
    perturbed = ODIN(temperature=1.0, noise=0.01).score_inputs(model, x)
    assert (perturbed <= unperturbed + 1e-6).float().mean() > 0.95
    assert (perturbed < unperturbed).any()


def test_odin_leaves_model_parameter_gradients_untouched() -> None:
    model, x = small_mlp(), random_features(4, 6, seed=5, dtype=torch.float32)
    ODIN().score_inputs(model, x)
    assert all(p.grad is None for p in model.parameters())


def test_vim_matches_the_reference_formula() -> None:
    torch.manual_seed(0)
    head = nn.Linear(8, 3).double()
    train_f, test_f = random_features(200, 8, seed=6).abs(), random_features(30, 8, seed=7).abs()
    with torch.no_grad():
        train = Features(logits=head(train_f), features=train_f)
        test = Features(logits=head(test_f), features=test_f)
    w, b = head.weight.detach().numpy(), head.bias.detach().numpy()
    origin = -np.linalg.pinv(w) @ b
    second_moment = EmpiricalCovariance(assume_centered=True).fit(train_f.numpy() - origin).covariance_
    eigenvalues, eigenvectors = np.linalg.eigh(second_moment)
    residual_basis = eigenvectors[:, np.argsort(-eigenvalues)[3:]]
    alpha = (
        train.logits.numpy().max(axis=1).mean()
        / np.linalg.norm((train_f.numpy() - origin) @ residual_basis, axis=1).mean()
    )
    virtual = alpha * np.linalg.norm((test_f.numpy() - origin) @ residual_basis, axis=1)
    expected = virtual - torch.logsumexp(test.logits, dim=1).numpy()
    scores = ViM(dim=3).fit(train, head=head).score(test)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-6, atol=1e-8)


def test_react_clips_at_the_training_percentile_then_takes_energy() -> None:
    torch.manual_seed(0)
    head = nn.Linear(5, 3)
    train_f, test_f = random_features(100, 5, seed=8, dtype=torch.float32).relu(), 3 * torch.ones(2, 5)
    threshold = float(np.percentile(train_f.numpy(), 90))
    with torch.no_grad():
        react = ReAct(percentile=90).fit(Features(logits=head(train_f), features=train_f), head=head)
        expected = -torch.logsumexp(head(torch.full((2, 5), threshold)), dim=1)
        torch.testing.assert_close(react.score(Features(logits=head(test_f), features=test_f)), expected)


def test_ash_variants_on_a_hand_computed_row() -> None:
    row = torch.tensor([[4.0, 0.0, 3.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    kept = torch.tensor([[4.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(activation_shaping(row, 80, "p"), kept)
    torch.testing.assert_close(activation_shaping(row, 80, "s"), kept * math.exp(10 / 7))
    torch.testing.assert_close(activation_shaping(row, 80, "b"), (kept > 0) * 5.0)


def test_ash_score_is_energy_of_the_head_on_shaped_features() -> None:
    torch.manual_seed(0)
    head = nn.Linear(10, 3)
    features = random_features(6, 10, seed=9, dtype=torch.float32).relu()
    with torch.no_grad():
        ash = ASH(percentile=80).fit(Features(logits=head(features), features=features), head=head)
        expected = -torch.logsumexp(head(activation_shaping(features, 80)), dim=1)
        torch.testing.assert_close(ash.score(Features(logits=head(features), features=features)), expected)


def test_kl_matching_is_the_smallest_kl_to_a_predicted_class_template() -> None:
    train_logits = random_features(300, 4, seed=10) * 3
    test_logits = random_features(20, 4, seed=11)
    p_train, p_test = train_logits.softmax(dim=1).numpy(), test_logits.softmax(dim=1).numpy()
    predicted = p_train.argmax(axis=1)
    templates = [p_train[predicted == c].mean(axis=0) for c in range(4)]
    expected = [min(kl_divergence(p, t) for t in templates) for p in p_test]
    scores = KLMatching().fit(Features(logits=train_logits)).score(Features(logits=test_logits))
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-6, atol=1e-9)
