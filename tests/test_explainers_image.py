"""DeDUCE and sparse visual counterfactuals on a LeNet trained for one epoch on 5000 real MNIST digits."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from real_data import real
from scipy.optimize import minimize

from trustbench.backbones.lenet import LeNet
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.deduce import DeDUCE
from trustbench.methods.counterfactual.explainer import ExplanationData, build
from trustbench.methods.counterfactual.sparse_vce import SparseVCE, lp_box_lmo
from trustbench.methods.erm import ERM
from trustbench.methods.ood.cache import FeatureCache

TRAIN_ROWS, BATCH, EXPLAINED = 5000, 32, 20
EPSILON = 10.0


@pytest.fixture(scope="module")
def mnist(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A LeNet trained by ERM for one epoch, its explanation data, and 20 correctly classified test digits
    with target = (label + 1) mod 10."""
    data_dir = tmp_path_factory.mktemp("data")  # the explainers' caches
    dataset = real("mnist")
    torch.manual_seed(0)
    backbone = LeNet(dataset.input_shape, dataset.num_classes)
    module = ERM(backbone, 10, optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9))
    x_train, y_train = dataset.x_train[:TRAIN_ROWS], dataset.y_train[:TRAIN_ROWS]
    optimizer = module.configure_optimizers()
    module.train()
    for batch in torch.randperm(TRAIN_ROWS, generator=torch.Generator().manual_seed(0)).split(BATCH):
        optimizer.zero_grad()
        module.training_loss(x_train[batch], y_train[batch]).backward()
        optimizer.step()
    module.eval()
    with torch.no_grad():
        predicted = backbone(dataset.x_test[:200]).argmax(dim=1)
    correct = (predicted == dataset.y_test[:200]).nonzero().squeeze(1)[:EXPLAINED]
    constraints = Constraints.for_dataset(dataset, lambda x: x)
    data = ExplanationData(x_train, y_train, 10, constraints, module, "mnist", data_dir, seed=0)
    return {
        "backbone": backbone,
        "data": data,
        "constraints": constraints,
        "x": dataset.x_test[correct],
        "target": (dataset.y_test[correct] + 1) % 10,
        "accuracy": (predicted == dataset.y_test[:200]).float().mean().item(),
    }


@pytest.fixture(scope="module")
def deduce(mnist: dict) -> DeDUCE:
    return DeDUCE().fit(mnist["data"])


@pytest.fixture(scope="module")
def deduce_search(mnist: dict, deduce: DeDUCE):
    return deduce.search(mnist["backbone"], mnist["x"], mnist["target"], mnist["constraints"])


def test_deduce_fitted_from_the_feature_cache_has_the_same_class_gaussians(
    mnist: dict, deduce: DeDUCE, tmp_path: Path
) -> None:
    """A run's DeDUCE reads the training features from the feature cache (filled by the first run on the
    model, read by the next): both fits equal a fit that extracts them itself."""
    cache = FeatureCache(tmp_path, mnist["backbone"])
    data = dataclasses.replace(mnist["data"], feature_cache=cache)
    filled, read = DeDUCE().fit(data), DeDUCE().fit(data)
    assert (cache.misses, cache.hits) == (1, 1)
    for fitted in (filled, read):
        assert torch.equal(fitted._means, deduce._means)
        assert torch.equal(fitted._scale_tril, deduce._scale_tril)


def target_probability(backbone: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return backbone(x).softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)


def l_p_norms(difference: torch.Tensor, p: float) -> torch.Tensor:
    return difference.flatten(1).double().abs().pow(p).sum(dim=1).pow(1 / p)


def test_the_classifier_explained_is_better_than_chance_by_far(mnist: dict) -> None:
    assert mnist["accuracy"] >= 0.8  # measured 0.90 on the first 200 test digits
    assert len(mnist["x"]) == EXPLAINED


def test_both_explainers_are_registered_by_config_name() -> None:
    assert isinstance(build("deduce", max_steps=10), DeDUCE)
    assert isinstance(build("sparse_vce", epsilon=3.0), SparseVCE)


def test_deduce_reaches_the_target_confidence_on_nearly_every_input(mnist: dict, deduce_search) -> None:
    # measured: all 20 digits reach p(target) >= 0.5, after 18 to 196 changed pixels (median 42)
    assert deduce_search.reached.float().mean().item() >= 0.9
    reached_probability = target_probability(
        mnist["backbone"], deduce_search.counterfactuals, mnist["target"]
    )
    assert bool((reached_probability[deduce_search.reached] >= 0.5).all())


def test_deduce_changes_each_pixel_once_so_its_l0_equals_its_steps(mnist: dict, deduce_search) -> None:
    changed = (deduce_search.counterfactuals != mnist["x"]).flatten(1).sum(dim=1)
    assert torch.equal(changed, deduce_search.steps)
    assert bool((deduce_search.steps > 0).all()) and bool((deduce_search.steps <= 700).all())


def test_deduce_sets_changed_pixels_to_an_end_of_the_pixel_range(mnist: dict, deduce_search) -> None:
    counterfactuals = deduce_search.counterfactuals
    changed = counterfactuals != mnist["x"]
    assert counterfactuals.min() >= 0.0 and counterfactuals.max() <= 1.0
    assert bool(((counterfactuals[changed] == 0.0) | (counterfactuals[changed] == 1.0)).all())


def test_deduce_stops_after_max_steps_even_when_the_target_is_not_reached(mnist: dict) -> None:
    short = DeDUCE(max_steps=3).fit(mnist["data"])
    search = short.search(mnist["backbone"], mnist["x"], mnist["target"], mnist["constraints"])
    assert bool((search.steps <= 3).all())
    assert bool((search.steps[~search.reached] == 3).all()) and not bool(search.reached.all())


def test_deduce_leaves_inputs_already_at_their_target_unchanged(mnist: dict, deduce: DeDUCE) -> None:
    with torch.no_grad():
        predicted = mnist["backbone"](mnist["x"]).argmax(dim=1)
    search = deduce.search(mnist["backbone"], mnist["x"], predicted, mnist["constraints"])
    assert torch.equal(search.counterfactuals, mnist["x"]) and int(search.steps.sum()) == 0


def test_deduce_never_changes_immutable_pixels(mnist: dict, deduce: DeDUCE) -> None:
    full = mnist["constraints"]
    mutable = torch.zeros_like(full.mutable)
    mutable[..., 7:21, 7:21] = True  # only the centre 14×14 may change
    centre_only = Constraints(full.lower, full.upper, mutable, full.increase_only)
    search = deduce.search(mnist["backbone"], mnist["x"][:5], mnist["target"][:5], centre_only)
    changed = search.counterfactuals != mnist["x"][:5]
    assert bool(changed.any()) and not bool(changed[:, ~mutable].any())


def test_deduce_explains_a_batch_exactly_as_it_explains_each_input_alone(
    mnist: dict, deduce: DeDUCE, deduce_search
) -> None:
    for row in range(5):
        alone = deduce.search(
            mnist["backbone"], mnist["x"][row : row + 1], mnist["target"][row : row + 1], mnist["constraints"]
        )
        assert torch.equal(alone.counterfactuals[0], deduce_search.counterfactuals[row])
        assert alone.steps.item() == deduce_search.steps[row].item()


def test_deduce_needs_fit_before_explain(mnist: dict) -> None:
    with pytest.raises(RuntimeError, match="call fit"):
        DeDUCE().explain(mnist["backbone"], mnist["x"], mnist["target"], mnist["constraints"])


@pytest.fixture(scope="module")
def sparse_counterfactuals(mnist: dict) -> torch.Tensor:
    return SparseVCE(epsilon=EPSILON).explain(
        mnist["backbone"], mnist["x"], mnist["target"], mnist["constraints"]
    )


def test_sparse_vce_stays_in_the_l15_ball_and_the_pixel_box(mnist: dict, sparse_counterfactuals) -> None:
    assert bool((l_p_norms(sparse_counterfactuals - mnist["x"], 1.5) <= EPSILON * (1 + 1e-5)).all())
    assert sparse_counterfactuals.min() >= 0.0 and sparse_counterfactuals.max() <= 1.0


def test_sparse_vce_raises_the_target_log_probability_of_every_input(
    mnist: dict, sparse_counterfactuals
) -> None:
    before = target_probability(mnist["backbone"], mnist["x"], mnist["target"]).log()
    after = target_probability(mnist["backbone"], sparse_counterfactuals, mnist["target"]).log()
    assert bool((after > before).all())
    # measured: 18 of 20 digits reach p(target) >= 0.5 within ε = 10 (10 of 20 within ε = 6)
    assert (after.exp() >= 0.5).float().mean().item() >= 0.75


def test_lp_box_lmo_without_a_binding_box_is_the_holder_dual_direction() -> None:
    direction = torch.randn(4, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    room = torch.full_like(direction, 10.0)
    vertex = lp_box_lmo(direction, room, room, epsilon=0.5, p=1.5)
    q = 3.0  # the Hölder dual of p = 1.5
    expected = 0.5 * direction.sign() * direction.abs().pow(q - 1)
    expected = expected / direction.abs().pow(q).sum(dim=1, keepdim=True).pow((q - 1) / q)
    torch.testing.assert_close(vertex, expected)


def test_lp_box_lmo_returns_the_whole_box_when_it_fits_in_the_ball() -> None:
    direction = torch.tensor([[1.0, -2.0, 0.5, 0.0]], dtype=torch.float64)
    up, down = torch.full_like(direction, 0.1), torch.full_like(direction, 0.2)
    vertex = lp_box_lmo(direction, up, down, epsilon=10.0, p=1.5)
    torch.testing.assert_close(vertex, torch.tensor([[0.1, -0.2, 0.1, 0.0]], dtype=torch.float64))


def test_lp_box_lmo_matches_a_numerical_solver_when_the_box_binds() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        w, x, epsilon = rng.normal(size=6), rng.uniform(size=6), rng.uniform(0.2, 1.5)
        vertex = lp_box_lmo(
            torch.tensor(w)[None], torch.tensor(1 - x)[None], torch.tensor(x)[None], epsilon, 1.5
        )[0].numpy()
        solved = minimize(
            lambda delta, w=w: -w @ delta,
            np.zeros(6),
            method="SLSQP",
            bounds=list(zip(-x, 1 - x, strict=True)),
            constraints=[{"type": "ineq", "fun": lambda d, e=epsilon: e**1.5 - np.sum(np.abs(d) ** 1.5)}],
        )
        assert np.sum(np.abs(vertex) ** 1.5) <= epsilon**1.5 * (1 + 1e-9)
        assert np.all(vertex <= 1 - x + 1e-12) and np.all(vertex >= -x - 1e-12)
        assert w @ vertex >= -solved.fun - 1e-5


def test_unfitted_explainers_reject_wrong_settings_with_the_allowed_range() -> None:
    with pytest.raises(ValueError, match="p must be > 1"):
        SparseVCE(p=1.0)
    with pytest.raises(ValueError, match="confidence must be strictly between 0 and 1"):
        DeDUCE(confidence=1.0)


def test_deduce_refuses_a_backbone_without_features(mnist: dict, tmp_path: Path) -> None:
    from trustbench.backbones.linear import Linear

    linear = ERM(Linear((1, 28, 28), 10), 10, optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    data = ExplanationData(
        mnist["data"].x_train, mnist["data"].y_train, 10, mnist["constraints"], linear, "mnist", tmp_path, 0
    )
    with pytest.raises(ValueError, match="feature_dim is None"):
        DeDUCE().fit(data)
