"""UQGAN's pieces against hand-computed values and the reference's formulas, and a short fit on real MNIST."""

from __future__ import annotations

import math

import pytest
import torch
from real_data import real
from torch import nn

from trustbench.backbones.lenet import LeNet
from trustbench.methods.uncertainty.uqgan import (
    UQGAN,
    gradient_penalty,
    log_cosine_regulariser,
    one_vs_all_scores,
)


def test_rescaled_sigmoids_give_the_papers_probabilities_and_scores():
    # K = 3, uniform prior: sigmoids (1, 1/2, 0) rescale to (1, 1/3, 0) -> probabilities (3/4, 1/4, 0)
    probs, aleatoric, epistemic = one_vs_all_scores(torch.tensor([[1.0, 0.5, 0.0]]), torch.full((3,), 1 / 3))
    torch.testing.assert_close(probs, torch.tensor([[0.75, 0.25, 0.0]]))
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(3)
    torch.testing.assert_close(aleatoric, torch.tensor([entropy]))
    # 1 - sum(pi p~^2) / sum(pi p~) = 1 - (1 + 1/9) / (1 + 1/3)
    torch.testing.assert_close(epistemic, torch.tensor([1 - (10 / 9) / (4 / 3)]))


def test_no_claiming_sigmoid_is_maximally_epistemic_and_a_sure_one_is_not():
    prior = torch.full((5,), 0.2)
    _, _, epistemic = one_vs_all_scores(torch.tensor([[1e-6] * 5, [1.0, 0.0, 0.0, 0.0, 0.0]]), prior)
    assert epistemic[0] > 0.999 and epistemic[1] < 1e-6


def test_gradient_penalty_of_a_linear_critic_is_the_squared_excess_of_its_weight_norm():
    critic = nn.Linear(4 + 2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 0.0, 7.0, -1.0]]))  # ‖∇_z C‖ = 5 everywhere
    real, fake = torch.randn(8, 4), torch.randn(8, 4)
    condition = torch.eye(2)[torch.arange(8) % 2]
    assert float(gradient_penalty(critic, real, fake, condition)) == pytest.approx(16.0)


def reference_log_cosine(real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor) -> float:
    """The reference's ``cosine_loss_classwise(space="log")``, loop by loop."""
    total, counted, eps = 0.0, 0, 1e-6
    for label in labels.unique():
        rows = (labels == label).nonzero().squeeze(1)
        if len(rows) < 2:
            continue
        counted += len(rows)
        for j in rows:
            directions = [(fake[i] - real[j]) / (fake[i] - real[j]).norm() for i in rows]
            pairs = [(a, b) for a in range(len(rows)) for b in range(a + 1, len(rows))]
            values = []
            for a, b in pairs:
                cosine = float(directions[a] @ directions[b])
                cosine = min(max(cosine, -1 + eps), 1 - eps)
                values.append(-math.log(math.acos(cosine) / math.pi + eps))
            total += sum(values) / len(pairs)
    return total / counted


def test_log_cosine_regulariser_matches_the_references_loops():
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(9, 5, generator=generator), torch.randn(9, 5, generator=generator)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 1, 0, 3])  # classes 2 and 3 have one example: skipped
    expected = reference_log_cosine(real, fake, labels)
    assert float(log_cosine_regulariser(real, fake, labels)) == pytest.approx(expected, rel=1e-5)


def test_a_short_fit_on_digits_0_to_4_is_more_epistemically_uncertain_on_digits_5_to_9():
    dataset = real("mnist")
    known = dataset.y_train < 5
    x, y = dataset.x_train[known][:3000], dataset.y_train[known][:3000]
    torch.manual_seed(0)
    model = UQGAN(
        LeNet((1, 28, 28), 5), 5, lambda params: torch.optim.Adam(params, lr=1e-3), hidden=128, latent_dim=16
    )
    cae_optimizer = torch.optim.Adam(model.cae.parameters(), lr=1e-3)
    for rows in torch.randperm(len(x)).split(100):  # one cAE epoch, then one of classifier-only training
        logits = model.cae.decode_logits(model.cae.encode(x[rows], y[rows]), y[rows])
        cae_optimizer.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(logits, x[rows]).backward()
        cae_optimizer.step()
    optimizer = torch.optim.Adam(model.backbone.parameters(), lr=1e-3)
    for rows in torch.randperm(len(x)).split(50):
        with torch.no_grad():
            generated = model.cae.decode(model.generate_codes(y[rows]), y[rows])
        optimizer.zero_grad()
        model.classifier_loss(x[rows], y[rows], generated).backward()
        optimizer.step()
    model.eval()
    test_known = dataset.y_test < 5
    with torch.no_grad():
        inside = model.predict(dataset.x_test[test_known][:500])
        outside = model.predict(dataset.x_test[~test_known][:500])
    accuracy = (inside.probs.argmax(dim=1) == dataset.y_test[test_known][:500]).float().mean()
    assert accuracy > 0.9
    assert outside.uncertainty.mean() > inside.uncertainty.mean() + 0.1
