"""DiVE (Rodriguez et al., ICCV 2021) on real MNIST digits with a briefly trained MLP and a small β-TCVAE:
its Fisher masks, its diversity term and its validity. Bars are measured figures with a margin; the
measured value stands beside each assertion."""

from __future__ import annotations

import pytest
import torch
from test_explainers_latent import MNIST_MEAN, MNIST_STD, _problem

from trustbench.methods.counterfactual.dive import TCVAE, DiVE
from trustbench.methods.counterfactual.explainer import build
from trustbench.metrics.counterfactual import diversity

TCVAE_SETTINGS = {"latent_dim": 8, "epochs": 5, "batch_size": 32, "lr": 2e-3}
EXPLAINED, K, STEPS = 10, 4, 60


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory):
    def standardise(images: torch.Tensor) -> torch.Tensor:
        return (images - MNIST_MEAN) / MNIST_STD

    task = _problem("mnist", tmp_path_factory.mktemp("dive"), 1000, standardise, steps=100)
    x = task.x_test[:EXPLAINED]
    with torch.no_grad():
        target = task.classifier(x).argsort(dim=1, descending=True)[:, 1]  # the runner-up class
    return task, x, target


def _explained(problem, **settings) -> tuple[DiVE, torch.Tensor]:
    task, x, target = problem
    dive = DiVE(**{"k": K, "steps": STEPS, "generative": TCVAE_SETTINGS, **settings}).fit(task.data)
    return dive, dive.explain(task.classifier, x, target, task.constraints)


def test_spectral_fisher_masks_split_the_latent_dimensions_into_k_groups(problem):
    dive, _ = _explained(problem, mask="fisher_spectral", steps=1)
    assert isinstance(dive.vae, TCVAE) and dive.masks.shape == (K, 8)
    torch.testing.assert_close(dive.masks.sum(dim=0), torch.ones(8))  # each dimension in exactly one group
    assert bool((dive.masks.sum(dim=1) >= 1).all())


@pytest.mark.slow  # a second Fisher pass and search: kept out of the default run's budget
def test_the_top_fisher_dimensions_are_masked_out_of_every_perturbation(problem):
    task, x, _ = problem
    dive, found = _explained(problem, mask="fisher_top_removed", top_removed=2)
    fisher = dive.fisher_information(task.classifier, task.data.x_train)
    top = fisher.diagonal().argsort(descending=True)[:2]
    assert bool((dive.masks[:, top] == 0).all()) and dive.masks.sum().item() == K * 6
    assert found.shape == (EXPLAINED, K, *x.shape[1:])


def test_the_diversity_term_spreads_the_perturbations_apart(problem):
    task, _, target = problem
    _, together = _explained(problem, mask="none", diversity_weight=0.0)
    _, diverse = _explained(problem, mask="none", diversity_weight=1.0)
    # measured: mean pairwise L1 within a set 1.7 without the term (the k searches collapse), 59.6 with it
    assert diversity(diverse).mean().item() > 10 * diversity(together).mean().item()
    with torch.no_grad():
        valid = task.classifier(diverse.flatten(0, 1)).argmax(dim=1) == target.repeat_interleave(K)
    # measured: 0.40 of the 40 counterfactuals reach the runner-up class in 60 steps (0.90 without the
    # diversity term: spreading the perturbations costs validity)
    assert valid.float().mean().item() >= 0.3


def test_dive_settings_are_checked_and_it_is_registered():
    with pytest.raises(ValueError, match="mask in fisher_spectral"):
        DiVE(mask="random")
    dive = build("dive", k=3)
    assert isinstance(dive, DiVE) and dive.returns_sets and dive.generative.kl_weight == 4.0
