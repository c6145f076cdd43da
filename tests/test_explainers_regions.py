"""Region-targeted counterfactuals (after STEEX, Jacob et al. 2022): region masks, the per-cell generator,
and counterfactuals of real MNIST digits that change nothing outside the chosen regions. The classifier is
the explanations family's LeNet (xai_models); bars are measured figures with a margin, measured beside."""

from __future__ import annotations

import pytest
import torch
from xai_models import mnist_lenet

from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import ExplanationData, build
from trustbench.methods.counterfactual.region_targeted import RegionTargeted, RegionVAE
from trustbench.methods.counterfactual.regions import region_masks, touched_cells
from trustbench.metrics.counterfactual import leakage

GENERATIVE = {"epochs": 6, "batch_size": 32, "lr": 2e-3}
TRAIN_ROWS, EXPLAINED, STEPS = 2000, 10, 100
# a spatial and an intensity region in the default run; the grid cells and the background in the slow one
REGIONS = [
    {"quadrants": [0, 1]},
    pytest.param({"cells": [5, 6, 9, 10]}, marks=pytest.mark.slow),
    "stroke",
    pytest.param("background", marks=pytest.mark.slow),
]


@pytest.fixture(scope="module")
def problem(tmp_path_factory: pytest.TempPathFactory):
    net, dataset = mnist_lenet()
    constraints = Constraints.for_dataset(dataset, lambda t: t)
    x_train, y_train = dataset.x_train[:TRAIN_ROWS], dataset.y_train[:TRAIN_ROWS]
    module = type("Fitted", (), {"backbone": net})()
    cache = tmp_path_factory.mktemp("regions")
    data = ExplanationData(x_train, y_train, 10, constraints, module, "mnist", cache, seed=0)
    x = dataset.x_test[:EXPLAINED]
    with torch.no_grad():
        target = net(x).argsort(dim=1, descending=True)[:, 1]  # the runner-up class
    return net, data, x, target


@pytest.fixture(scope="module")
def explainer(problem) -> RegionTargeted:
    _, data, _, _ = problem
    return RegionTargeted(steps=STEPS, generative=GENERATIVE).fit(data)


def test_quadrant_cell_and_intensity_masks_cover_the_named_pixels():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 3, 20] = 1.0  # one bright pixel, in the top right quadrant, cell 2 of the 4x4 grid
    low, high = torch.zeros(1, 28, 28), torch.ones(1, 28, 28)
    top_right = region_masks({"quadrants": [1]}, x, low, high)
    assert top_right.sum().item() == 14 * 14 and bool(top_right[0, 0, :14, 14:].all())
    cells = region_masks({"cells": [5, 15]}, x, low, high)  # 7x7 cells: rows 7-13 × cols 7-13, and the last
    assert cells.sum().item() == 2 * 49 and bool(cells[0, 0, 7:14, 7:14].all() & cells[0, 0, 21:, 21:].all())
    stroke = region_masks("stroke", x, low, high)
    assert stroke.sum().item() == 1 and bool(stroke[0, 0, 3, 20])
    assert torch.equal(region_masks("background", x, low, high), ~stroke)
    assert touched_cells(stroke).nonzero().tolist() == [[0, 2]]  # (input 0, cell 2)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("eyes", "is not a region"), ({"quadrants": [4]}, "quadrants are 0"), ({"cells": [16]}, r"0\.\.15")],
)
def test_a_wrong_region_says_what_is_allowed(spec, message):
    with pytest.raises(ValueError, match=message):
        region_masks(spec, torch.zeros(1, 1, 28, 28), torch.zeros(1, 28, 28), torch.ones(1, 28, 28))


def test_each_code_of_the_region_generator_moves_only_its_own_cell(explainer, problem):
    _, _, x, _ = problem
    vae: RegionVAE = explainer.vae
    with torch.no_grad():
        z = vae.encode(x[:2])
        moved = z.clone()
        moved[:, 4 * 6 : 4 * 7] += 3.0  # cell 6: rows 7-13, cols 14-20
        change = (vae.decode(moved) - vae.decode(z)).abs()[:, 0]
    assert change[:, 7:14, 14:21].sum().item() > 0
    change[:, 7:14, 14:21] = 0
    assert change.max().item() == 0.0


@pytest.mark.parametrize("spec", REGIONS, ids=str)
def test_region_targeted_counterfactuals_change_nothing_outside_the_regions(explainer, problem, spec):
    net, data, x, target = problem
    regions = region_masks(spec, x, data.constraints.lower, data.constraints.upper)
    found = explainer.explain(net, x, target, data.constraints, regions=regions)
    assert leakage(x, found, regions).max().item() == 0.0
    with torch.no_grad():
        valid = (net(found).argmax(dim=1) == target).float().mean().item()
    # measured validity on 10 digits towards the runner-up class: top half 0.9, centre cells 1.0, stroke 0.8,
    # background 0.9
    assert valid >= 0.7
    assert bool((found != x).flatten(1).any(dim=1).all())  # every digit changed inside its region


def test_without_the_paste_the_generators_reconstruction_alone_leaks(explainer, problem):
    _, data, x, _ = problem
    regions = region_masks({"quadrants": [0, 1]}, x, data.constraints.lower, data.constraints.upper)
    with torch.no_grad():
        reconstruction = explainer.vae(x)
    # measured: 25.2 (L1, pixel units) of the bottom half per digit, before any search step
    assert leakage(x, reconstruction, regions).mean().item() > 10


def test_region_targeted_needs_the_regions_and_is_registered(explainer, problem):
    net, data, x, target = problem
    with pytest.raises(ValueError, match="method.explain.regions"):
        explainer.explain(net, x, target, data.constraints)
    assert isinstance(build("region_targeted", proximity_weight=0.1), RegionTargeted)
