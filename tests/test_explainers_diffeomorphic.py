"""Diffeomorphic counterfactuals (a RealNVP flow's coordinates) and the tangent-space share of a change.

The share is checked by hand on linear decoders, whose tangent space is known; the flow and the explainer
on real (standardised) MNIST digits with a classifier, a VAE and a flow trained briefly on 2000 of them,
so the bars are measured figures with a margin (the measured value is beside each assertion).
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from real_data import real

from trustbench.backbones.mlp import MLP
from trustbench.errors import ConfigError
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import ExplanationData, build
from trustbench.methods.counterfactual.flow import FlowConfig, PixelFlow, trained_flow
from trustbench.methods.counterfactual.generative import GenerativeConfig, trained_vae
from trustbench.methods.erm import ERM
from trustbench.metrics.tangent import decoder_jacobian, tangent_share

MNIST_IMAGES, EXPLAINED = 2000, 30
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
FLOW = {"epochs": 2, "transforms": 4}
VAE = {"latent_dim": 8, "epochs": 4, "batch_size": 64, "lr": 2e-3}

# a 6-d decoder's tangent directions a1 = (1, 1, 0, 0, 0, 0) and a2 = (0, 0, 2, 0, 0, 0)
TANGENT = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])


def test_tangent_share_of_a_linear_decoder_is_the_hand_computed_projection():
    # δ = (3, 1, 0, 4, 0, 0): its projection on a1 is (δ·a1 / |a1|²) a1 = (2, 2, 0, ...), |.|² = 8; on a2 0
    delta = torch.tensor([[3.0, 1.0, 0.0, 4.0, 0.0, 0.0], [0.0, 0.0, 5.0, 0.0, 0.0, 0.0]])
    z = torch.zeros(2, 2)
    jacobian = decoder_jacobian(lambda codes: codes @ TANGENT.T + 1.0, z)
    assert torch.equal(jacobian, TANGENT.expand(2, 6, 2))
    share = tangent_share(delta, jacobian)
    assert share.tolist() == pytest.approx([8.0 / 26.0, 1.0])


def test_a_repeated_tangent_direction_spans_nothing_more():
    repeated = torch.stack([TANGENT[:, 0]] * 2, dim=1).unsqueeze(0)  # rank 1: only a1
    share = tangent_share(torch.tensor([[3.0, 1.0, 5.0, 4.0, 0.0, 0.0]]), repeated)
    assert share.item() == pytest.approx(8.0 / 51.0)


def test_no_change_has_no_share_and_mismatched_shapes_say_what_is_needed():
    assert tangent_share(torch.zeros(1, 6), TANGENT.unsqueeze(0)).isnan().all()
    with pytest.raises(ValueError, match=r"one \(D, L\) Jacobian per change with D = 5"):
        tangent_share(torch.ones(1, 5), TANGENT.unsqueeze(0))


def test_decoder_jacobian_of_a_nonlinear_decoder_equals_autograds():
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 7))
    z = torch.randn(4, 3)
    expected = torch.stack([torch.autograd.functional.jacobian(decoder, row) for row in z])
    assert torch.allclose(decoder_jacobian(decoder, z), expected, atol=1e-6)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory):
    """2000 standardised training digits with a 64-unit MLP fitted to them, and 30 test digits."""
    root = tmp_path_factory.mktemp("mnist")
    dataset = real("mnist")

    def standardise(images: torch.Tensor) -> torch.Tensor:
        return (images - MNIST_MEAN) / MNIST_STD

    rows = torch.randperm(len(dataset.x_train), generator=torch.Generator().manual_seed(0))[:MNIST_IMAGES]
    x, y = standardise(dataset.x_train[rows]), dataset.y_train[rows]
    torch.manual_seed(0)
    module = ERM(
        MLP((1, 28, 28), 10, hidden_sizes=[64]), 10, optimizer=functools.partial(torch.optim.SGD, lr=0.1)
    )
    optimizer = module.configure_optimizers()
    for _ in range(100):
        optimizer.zero_grad()
        module.training_loss(x, y).backward()
        optimizer.step()
    constraints = Constraints.for_dataset(dataset, standardise)
    data = ExplanationData(x, y, 10, constraints, module.eval(), "mnist", root / "cache", seed=0)
    return data, module.backbone, standardise(dataset.x_test[:EXPLAINED])


@pytest.fixture(scope="module")
def flow(mnist) -> PixelFlow:
    return trained_flow(mnist[0], FlowConfig(**FLOW))


def test_the_flow_inverts_itself_on_real_digits(mnist, flow):
    _, _, x = mnist
    with torch.no_grad():
        z = flow.encode(x)
        back = flow.decode(z)
    assert z.shape == (EXPLAINED, 784)
    # a standardised pixel's 8-bit step is 1 / (255 · 0.3081) ≈ 0.0127; float32 couplings return x to 1e-4
    assert (back - x).abs().max().item() < 1e-4  # measured 1.1e-6


def test_the_flow_is_stored_and_reloaded_without_training(mnist, flow, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a stored flow was trained again")

    monkeypatch.setattr("trustbench.methods.counterfactual.generative.fit_generative", refuse)
    again = trained_flow(mnist[0], FlowConfig(**FLOW))
    assert all(
        torch.equal(a, b)
        for a, b in zip(flow.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_diffeomorphic_changes_lie_more_in_the_tangent_space_than_the_pixel_attacks(mnist, flow):
    data, classifier, x = mnist
    with torch.no_grad():
        target = classifier(x).argsort(dim=1, descending=True)[:, 1]
    vae = trained_vae(data, GenerativeConfig(**VAE))
    with torch.no_grad():
        jacobian = decoder_jacobian(vae.decode, vae.encode(x))
    shares = {}
    for name, hparams in (("diffeomorphic", {"generative": FLOW}), ("wachter", {})):
        x_cf = build(name, **hparams).fit(data).explain(classifier, x, target, data.constraints).detach()
        with torch.no_grad():
            assert (classifier(x_cf).argmax(dim=1) == target).all()  # both flip all 30 digits
        shares[name] = tangent_share(x_cf - x, jacobian).mean().item()
    # measured 0.215 vs 0.164 (a random direction's share would be 8 / 784 = 0.01)
    assert shares["diffeomorphic"] > 1.2 * shares["wachter"]


def test_diffeomorphic_settings_and_data_errors_name_what_is_allowed(mnist):
    with pytest.raises(ConfigError, match="has no key depth; its keys are alpha, batch_size, epochs"):
        build("diffeomorphic", generative={"depth": 3})
    with pytest.raises(ValueError, match="diffeomorphic's confidence is a probability"):
        build("diffeomorphic", confidence=1.5)
    data, classifier, x = mnist
    with pytest.raises(RuntimeError, match="call fit"):
        build("diffeomorphic").explain(
            classifier, x, torch.zeros(EXPLAINED, dtype=torch.long), data.constraints
        )
    tabular = ExplanationData(
        data.x_train.flatten(1), data.y_train, 10, data.constraints, data.module, "rows", Path("."), seed=0
    )
    with pytest.raises(ValueError, match="use a VAE-based explainer"):
        trained_flow(tabular)
