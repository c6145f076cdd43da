"""Latent-space counterfactual explainers (REVISE, CLUE, Δ-CLUE, ∇-CLUE, GLAM-CLUE, latent gradient),
the entropy attribution built on CLUE's counterfactual, and the generative models they search, on real
Adult rows and real (standardised) MNIST digits.

Models are tiny and trained briefly, so every bar below is a measured figure with a margin, not a
paper number; the measured value is given beside each assertion.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from real_data import real

from trustbench.backbones.mlp import MLP
from trustbench.methods.counterfactual import generative
from trustbench.methods.counterfactual.clue import Clue, DeltaClue, NablaClue
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import ExplanationData, build
from trustbench.methods.counterfactual.generative import (
    GenerativeConfig,
    predictive_entropy,
    range_scaled_l1,
    train_class_autoencoders,
    trained_vae,
)
from trustbench.methods.counterfactual.glam_clue import GlamClue
from trustbench.methods.counterfactual.latent_gradient import LatentGradient
from trustbench.methods.counterfactual.revise import Revise
from trustbench.methods.counterfactual.uncertainty_attribution import PathEntropyAttribution
from trustbench.methods.erm import ERM
from trustbench.metrics.counterfactual import diversity

ADULT_ROWS, MNIST_IMAGES, EXPLAINED = 4000, 2000, 50
ADULT_VAE = {"latent_dim": 8, "epochs": 20, "batch_size": 128, "kl_weight": 0.5}
MNIST_VAE = {"latent_dim": 8, "epochs": 8, "batch_size": 32, "lr": 2e-3}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class Problem:
    data: ExplanationData
    classifier: torch.nn.Module
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def constraints(self) -> Constraints:
        return self.data.constraints


def _fitted_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, steps: int) -> ERM:
    torch.manual_seed(0)
    module = ERM(
        MLP(tuple(x.shape[1:]), num_classes, hidden_sizes=[64]),
        num_classes,
        optimizer=functools.partial(torch.optim.SGD, lr=0.1),
    )
    optimizer = module.configure_optimizers()
    for _ in range(steps):
        optimizer.zero_grad()
        module.training_loss(x, y).backward()
        optimizer.step()
    return module.eval()


def _problem(name: str, root: Path, size: int, normalise, steps: int) -> Problem:
    """`size` random training rows of dataset `name`, a classifier fitted to them, 1000 test rows."""
    dataset = real(name)
    rows = torch.randperm(len(dataset.x_train), generator=torch.Generator().manual_seed(0))[:size]
    x, y = normalise(dataset.x_train[rows]), dataset.y_train[rows]
    module = _fitted_classifier(x, y, dataset.num_classes, steps)
    constraints = Constraints.for_dataset(dataset, normalise)
    data = ExplanationData(x, y, dataset.num_classes, constraints, module, name, root / "cache", seed=0)
    return Problem(data, module.backbone, normalise(dataset.x_test[:1000]), dataset.y_test[:1000])


@pytest.fixture(scope="module")
def adult(tmp_path_factory: pytest.TempPathFactory) -> Problem:
    return _problem("adult", tmp_path_factory.mktemp("adult"), ADULT_ROWS, lambda t: t, steps=300)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> Problem:
    def standardise(images: torch.Tensor) -> torch.Tensor:
        return (images - MNIST_MEAN) / MNIST_STD

    return _problem("mnist", tmp_path_factory.mktemp("mnist"), MNIST_IMAGES, standardise, steps=100)


@pytest.fixture(scope="module")
def adult_vae(adult: Problem) -> generative.VAE:
    return trained_vae(adult.data, GenerativeConfig(**ADULT_VAE))


@pytest.fixture(scope="module")
def mnist_vae(mnist: Problem) -> generative.VAE:
    return trained_vae(mnist.data, GenerativeConfig(**MNIST_VAE))


def _mean_error(reconstruction: torch.Tensor, x: torch.Tensor, constraints: Constraints) -> float:
    return range_scaled_l1(reconstruction, x, constraints).mean().item()


def test_tabular_vae_reconstructs_adult_rows_much_closer_than_the_mean_row(adult, adult_vae):
    with torch.no_grad():
        error = _mean_error(adult_vae(adult.x_test), adult.x_test, adult.constraints)
    mean_row = adult.data.x_train.mean(dim=0).expand_as(adult.x_test)
    baseline = _mean_error(mean_row, adult.x_test, adult.constraints)
    # measured: 0.053 against 0.085 for the training mean row (errors in units of each column's range)
    assert error < 0.07
    assert error < 0.8 * baseline


def test_image_vae_reconstructs_standardised_digits_at_half_the_error_of_the_mean_image(mnist, mnist_vae):
    with torch.no_grad():
        reconstruction = mnist_vae(mnist.x_test)
    error = _mean_error(reconstruction, mnist.x_test, mnist.constraints)
    mean_image = mnist.data.x_train.mean(dim=0).expand_as(mnist.x_test)
    # measured: 0.073 against 0.148 for the training mean image (errors in units of the pixel range)
    assert error < 0.09
    assert error < 0.6 * _mean_error(mean_image, mnist.x_test, mnist.constraints)


def test_image_vae_decodes_into_the_standardised_pixel_range(mnist, mnist_vae):
    with torch.no_grad():
        decoded = mnist_vae.decode(3 * torch.randn(200, MNIST_VAE["latent_dim"]))
    low, high = -MNIST_MEAN / MNIST_STD, (1 - MNIST_MEAN) / MNIST_STD
    assert decoded.min().item() >= low - 1e-5 and decoded.max().item() <= high + 1e-5
    assert decoded.min().item() < low + 0.01 and decoded.max().item() > high - 0.01


@pytest.mark.parametrize(
    ("input_shape", "convolutional"), [((1, 28, 28), True), ((3, 32, 32), True), ((3, 30, 30), False)]
)
def test_image_vae_is_convolutional_when_sides_divide_by_four_else_an_mlp(input_shape, convolutional):
    vae = generative.VAE(input_shape, torch.zeros(input_shape), torch.ones(input_shape))
    assert any(isinstance(layer, torch.nn.Conv2d) for layer in vae.modules()) == convolutional
    assert vae(torch.rand(2, *input_shape)).shape == (2, *input_shape)


def test_tabular_vae_decodes_each_mutable_onehot_group_as_a_distribution(adult, adult_vae):
    with torch.no_grad():
        decoded = adult_vae.decode(3 * torch.randn(200, ADULT_VAE["latent_dim"]))
    for group in adult.constraints.onehot_groups:
        torch.testing.assert_close(decoded[:, list(group)].sum(dim=1), torch.ones(200))


def test_second_trained_vae_call_loads_the_stored_weights_without_training(adult, adult_vae, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the VAE was trained again although its weights are cached")

    monkeypatch.setattr(generative, "fit_generative", refuse)
    again = trained_vae(adult.data, GenerativeConfig(**ADULT_VAE))
    stored, loaded = adult_vae.state_dict(), again.state_dict()
    assert stored.keys() == loaded.keys()
    assert all(torch.equal(stored[name], loaded[name]) for name in stored)


def test_a_changed_generative_config_trains_and_stores_a_new_model(adult, adult_vae, monkeypatch):
    calls = []
    train = generative.fit_generative
    monkeypatch.setattr(generative, "fit_generative", lambda *args: calls.append(1) or train(*args))
    before = set(adult.data.cache_dir.glob("adult-vae-*.pt"))
    trained_vae(adult.data, GenerativeConfig(**{**ADULT_VAE, "epochs": 1}))
    assert len(calls) == 1
    assert len(set(adult.data.cache_dir.glob("adult-vae-*.pt")) - before) == 1


def _flipped(problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    x = problem.x_test[:EXPLAINED]
    with torch.no_grad():
        return x, 1 - problem.classifier(x).argmax(dim=1)


@pytest.fixture(scope="module")
def adult_counterfactuals(adult, adult_vae) -> dict[str, torch.Tensor]:
    x, target = _flipped(adult)
    explainers = [Revise(generative=ADULT_VAE), LatentGradient(generative=ADULT_VAE)]
    return {
        e.name: e.fit(adult.data).explain(adult.classifier, x, target, adult.constraints) for e in explainers
    }


# measured validity on the first 50 Adult test rows, each asked for the other class: 1.00 for both
@pytest.mark.parametrize("name", ["revise", "latent_gradient"])
def test_latent_search_flips_the_prediction_of_nearly_every_adult_row(adult, adult_counterfactuals, name):
    _, target = _flipped(adult)
    with torch.no_grad():
        predicted = adult.classifier(adult_counterfactuals[name]).argmax(dim=1)
    assert (predicted == target).float().mean().item() >= 0.9


@pytest.mark.parametrize("name", ["revise", "latent_gradient"])
def test_latent_counterfactuals_respect_adult_constraints(adult, adult_counterfactuals, name):
    x, _ = _flipped(adult)
    found, constraints = adult_counterfactuals[name], adult.constraints
    assert torch.equal(found[:, ~constraints.mutable], x[:, ~constraints.mutable])
    assert bool((found[:, constraints.increase_only] >= x[:, constraints.increase_only]).all())
    assert bool((found >= torch.minimum(constraints.lower, x)).all())
    assert bool((found <= torch.maximum(constraints.upper, x)).all())
    for group in constraints.onehot_groups:
        values = found[:, list(group)]
        assert bool(((values == 0) | (values == 1)).all()) and bool((values.sum(dim=1) == 1).all())
    # the search moves along the decoder's manifold: some mutable columns change in every row
    assert bool((found != x).any(dim=1).all())


def _most_uncertain(problem: Problem) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        logits = problem.classifier(problem.x_test)
    chosen = predictive_entropy(logits).argsort(descending=True)[:EXPLAINED]
    return problem.x_test[chosen], logits[chosen].argmax(dim=1), predictive_entropy(logits[chosen])


def test_clue_lowers_the_entropy_of_the_most_uncertain_digits_and_keeps_their_class(mnist, mnist_vae):
    x, predicted, entropy = _most_uncertain(mnist)
    found = (
        Clue(generative=MNIST_VAE).fit(mnist.data).explain(mnist.classifier, x, predicted, mnist.constraints)
    )
    with torch.no_grad():
        logits = mnist.classifier(found)
    # measured: mean entropy 1.55 → 0.05 nats, every prediction kept
    assert entropy.mean().item() - predictive_entropy(logits).mean().item() > 1.0
    assert (logits.argmax(dim=1) == predicted).float().mean().item() >= 0.9


def test_delta_clue_returns_k_distinct_counterfactuals_for_each_input(mnist, mnist_vae):
    x, predicted, entropy = _most_uncertain(mnist)
    explainer = DeltaClue(k=3, steps=100, generative=MNIST_VAE).fit(mnist.data)
    found = explainer.explain(mnist.classifier, x, predicted, mnist.constraints)
    assert found.shape == (EXPLAINED, 3, 1, 28, 28)
    span = (mnist.constraints.upper - mnist.constraints.lower).mean()
    pairwise = (found[:, :, None] - found[:, None]).abs().flatten(3).mean(dim=3) / span
    distinct = pairwise[:, ~torch.eye(3, dtype=torch.bool)]
    # measured: smallest difference within a set 5.5e-4, mean 6.5e-3 (mean |Δ| per pixel, in pixel ranges)
    assert distinct.min().item() > 1e-5
    assert distinct.mean().item() > 1e-3
    with torch.no_grad():
        after = predictive_entropy(mnist.classifier(found.flatten(0, 1)))
    # measured: 1.55 → 0.55 nats; the δ-ball limits how far each CLUE may go
    assert entropy.mean().item() - after.mean().item() > 0.5


def test_each_class_autoencoder_reconstructs_its_own_class_best(mnist):
    config = GenerativeConfig(latent_dim=8, epochs=5, batch_size=32, lr=2e-3)
    autoencoders = train_class_autoencoders(mnist.data, config)
    assert len(autoencoders) == 10
    with torch.no_grad():
        errors = torch.stack(
            [range_scaled_l1(ae(mnist.x_test), mnist.x_test, mnist.constraints) for ae in autoencoders], 1
        )
    # measured: the own-class autoencoder has the smallest error on 0.55 of test digits (chance: 0.1)
    assert (errors.argmin(dim=1) == mnist.y_test).float().mean().item() > 0.4


def test_explainers_are_registered_under_their_config_names():
    assert isinstance(build("revise"), Revise)
    assert isinstance(build("latent_gradient"), LatentGradient)
    assert isinstance(build("clue"), Clue) and build("clue").explains_uncertainty
    delta = build("delta_clue", k=4, radius=0.5)
    assert isinstance(delta, DeltaClue) and delta.returns_sets and delta.k == 4


def test_explaining_before_fit_says_to_call_fit(adult):
    x, target = _flipped(adult)
    with pytest.raises(RuntimeError, match=r"call fit\(data\) before explain"):
        Revise().explain(adult.classifier, x, target, adult.constraints)


def test_an_unknown_generative_setting_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="^the generative model block has no key latent_size; its keys are .*latent_dim"
    ):
        Revise(generative={"latent_size": 4})


# ∇-CLUE and GLAM-CLUE (Ley, Bhatt & Weller, AAAI 2022) on the 20 most uncertain test digits, beside Δ-CLUE
# on the same inputs; they search the module's cached MNIST VAE.
FEW_UNCERTAIN, K = 20, 3
GLAM = {"group_size": 200, "candidates": 2000, "steps": 100, "generative": MNIST_VAE}


@pytest.fixture(scope="module")
def uncertain(mnist: Problem) -> tuple[torch.Tensor, torch.Tensor]:
    """The most uncertain test digits and their predicted classes."""
    x, predicted, _ = _most_uncertain(mnist)
    return x[:FEW_UNCERTAIN], predicted[:FEW_UNCERTAIN]


def _sets(mnist: Problem, uncertain, explainer) -> torch.Tensor:
    x, predicted = uncertain
    return explainer.fit(mnist.data).explain(mnist.classifier, x, predicted, mnist.constraints)


@pytest.fixture(scope="module")
def delta_sets(mnist, uncertain) -> torch.Tensor:
    return _sets(mnist, uncertain, DeltaClue(k=K, steps=100, generative=MNIST_VAE))


def test_nabla_clue_without_its_diversity_term_is_delta_clue(mnist, uncertain, delta_sets):
    nabla = _sets(mnist, uncertain, NablaClue(diversity_weight=0.0, k=K, steps=100, generative=MNIST_VAE))
    assert torch.equal(nabla, delta_sets)


def test_nabla_clue_sets_are_more_diverse_than_delta_clue_sets_and_still_lower_the_entropy(
    mnist, uncertain, delta_sets
):
    nabla = _sets(mnist, uncertain, NablaClue(k=K, steps=100, generative=MNIST_VAE))
    # measured: mean pairwise L1 within a set 59.1 (∇-CLUE, diversity_weight 0.3) against 12.4 (Δ-CLUE)
    assert diversity(nabla).mean().item() > 3 * diversity(delta_sets).mean().item()
    x, predicted = uncertain
    with torch.no_grad():
        before = predictive_entropy(mnist.classifier(x)).mean().item()
        logits = mnist.classifier(nabla.flatten(0, 1))
    # measured: 1.70 → 0.75 nats, the predicted class kept by 0.83 of the CLUEs
    assert before - predictive_entropy(logits).mean().item() > 0.6
    assert (logits.argmax(dim=1) == predicted.repeat_interleave(K)).float().mean().item() >= 0.7


@pytest.fixture(scope="module")
def glam(mnist: Problem) -> GlamClue:
    return GlamClue(**GLAM).fit(mnist.data)


class CountingClassifier(torch.nn.Module):
    def __init__(self, classifier: torch.nn.Module) -> None:
        super().__init__()
        self.classifier, self.calls = classifier, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.classifier(x)


def test_glam_clue_explains_the_whole_group_in_one_decode_without_asking_the_classifier(
    mnist, uncertain, glam, monkeypatch
):
    x, predicted = uncertain
    decodes = []
    decode = glam.vae.decode
    monkeypatch.setattr(glam.vae, "decode", lambda z: decodes.append(len(z)) or decode(z))
    counting = CountingClassifier(mnist.classifier)
    found = glam.explain(counting, x, predicted, mnist.constraints)
    assert found.shape == x.shape
    assert counting.calls == 0 and decodes == [FEW_UNCERTAIN]


def test_glam_clue_makes_the_uncertain_group_certain_and_keeps_its_classes(mnist, uncertain, glam):
    x, predicted = uncertain
    found = glam.explain(mnist.classifier, x, predicted, mnist.constraints)
    with torch.no_grad():
        before = predictive_entropy(mnist.classifier(x))
        logits = mnist.classifier(found)
    after = predictive_entropy(logits)
    # measured: 1.70 → 0.24 nats; 0.55 of the group below 0.1 nats; every class kept
    assert before.mean().item() - after.mean().item() > 1.0
    assert (after < 0.1).float().mean().item() >= 0.4
    assert (logits.argmax(dim=1) == predicted).float().mean().item() >= 0.9


def test_glam_clue_explains_each_input_as_it_would_alone(mnist, uncertain, glam):
    x, predicted = uncertain
    together = glam.explain(mnist.classifier, x, predicted, mnist.constraints)
    alone = torch.cat([glam.explain(mnist.classifier, x[i : i + 1], predicted[i : i + 1], mnist.constraints)
                       for i in range(3)])  # fmt: skip
    torch.testing.assert_close(together[:3], alone)


def test_glam_clue_before_fit_and_bad_settings_say_what_is_wrong(mnist, uncertain):
    x, predicted = uncertain
    with pytest.raises(RuntimeError, match=r"call it first"):
        GlamClue().explain(mnist.classifier, x, predicted, mnist.constraints)
    with pytest.raises(ValueError, match="group_size <= candidates"):
        GlamClue(group_size=10, candidates=5)
    with pytest.raises(ValueError, match="diversity_weight >= 0"):
        NablaClue(diversity_weight=-1)


def test_wave2_clue_explainers_are_registered_under_their_config_names():
    assert isinstance(build("nabla_clue", k=2), NablaClue) and build("nabla_clue").returns_sets
    glam = build("glam_clue", group_size=5, candidates=5)
    assert isinstance(glam, GlamClue) and glam.explains_uncertainty and not glam.returns_sets


# The path-integral attribution of the entropy (Perez et al., UAI 2022) on the 5 most uncertain digits.
@pytest.fixture(scope="module")
def entropy_attribution(mnist, mnist_vae):
    x, predicted, _ = _most_uncertain(mnist)
    attribution = PathEntropyAttribution(bins=20, steps=50, generative=MNIST_VAE).fit(mnist.data)
    return attribution.attribute(mnist.classifier, x[:5], mnist.constraints), predicted[:5]


def test_entropy_attributions_sum_to_the_entropy_drop_from_input_to_fiducial(entropy_attribution):
    found, _ = entropy_attribution
    drop = found.entropy_input - found.entropy_fiducial
    # measured: drops 1.47-1.78 nats, sums off by 0.004-0.020 nats (20 bins on each path)
    assert bool((drop > 1.0).all())
    torch.testing.assert_close(found.total.flatten(1).sum(dim=1), drop, atol=0.04, rtol=0.0)
    # both paths carry part of it: measured latent 1.19-1.52, pixel 0.27-0.61 nats
    assert bool((found.latent.flatten(1).sum(dim=1) > 0.5).all())
    assert bool((found.pixel.flatten(1).sum(dim=1) > 0.1).all())


def test_the_fiducial_is_a_certain_member_of_the_predicted_class(mnist, entropy_attribution):
    found, predicted = entropy_attribution
    with torch.no_grad():
        assert torch.equal(mnist.classifier(found.fiducial).argmax(dim=1), predicted)
    # measured: 0.02-0.34 nats, against 1.80-1.97 at the inputs
    assert found.entropy_fiducial.max().item() < 0.5
