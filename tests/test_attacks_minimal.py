"""FGSM, BIM, DeepFool and the minimal-ε adversarial set on linear classifiers of real MNIST digits, whose
smallest perturbations are known in closed form: for scores z = Wx + b and label y, the nearest boundary
is min over k ≠ y of (z_y − z_k) / ‖w_y − w_k‖_q (q = 1 for an ℓ∞ perturbation, 2 for ℓ2)."""

from __future__ import annotations

import pytest
import torch
import xai_models
from real_data import real
from torch import nn

from trustbench.attacks.deepfool import STABILITY, deepfool
from trustbench.attacks.fgsm import bim, fgsm
from trustbench.attacks.minimal import ATTACKS, minimal_adversarial
from trustbench.attacks.objective import Objective
from trustbench.attacks.pgd import Threat
from trustbench.errors import ConfigError

UNBOUNDED = (torch.tensor(-1e6), torch.tensor(1e6))
PIXELS = (torch.tensor(0.0), torch.tensor(1.0))
DUAL = {"linf": 1, "l2": 2}


def linear_model(weight: torch.Tensor, bias: torch.Tensor) -> tuple[nn.Module, Objective]:
    net = nn.Sequential(nn.Flatten(), nn.Linear(weight.shape[1], weight.shape[0]))
    with torch.no_grad():
        net[1].weight.copy_(weight)
        net[1].bias.copy_(bias)
    return net, Objective(lambda z: net(z).softmax(dim=1))


def boundary_distance(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor, norm: str):
    """Each row's exact distance, in `norm`, to the nearest decision boundary of the affine scores."""
    scores = x.flatten(1) @ weight.T + bias
    gaps = scores.gather(1, y[:, None]) - scores
    differences = (weight[y][:, None, :] - weight[None]).norm(p=DUAL[norm], dim=2)
    distances = gaps / differences
    distances[torch.arange(len(y)), y] = float("inf")
    return distances.min(dim=1).values


@pytest.fixture(scope="module")
def binary() -> dict:
    """z = (0, w·x + b) on 120 real test digits, labelled by the model (so all correctly classified)."""
    x = real("mnist").x_test[:120]
    w = torch.randn(784, generator=torch.Generator().manual_seed(0)) * 0.05
    weight = torch.stack([torch.zeros(784), w])
    bias = torch.tensor([0.0, -float((x.flatten(1) @ w).median())])
    net, objective = linear_model(weight, bias)
    y = net(x).argmax(dim=1)
    return {"x": x, "y": y, "w": w, "objective": objective, "weight": weight, "bias": bias, "net": net}


@pytest.fixture(scope="module")
def multiclass() -> dict:
    """A ten-class least-squares classifier of 3000 real training digits (one-hot targets, ridge 1), on the
    first 100 test digits it classifies correctly."""
    mnist = real("mnist")
    inputs = torch.cat([mnist.x_train[:3000].flatten(1), torch.ones(3000, 1)], dim=1).double()
    targets = nn.functional.one_hot(mnist.y_train[:3000], 10).double()
    solution = torch.linalg.solve(inputs.T @ inputs + torch.eye(785, dtype=torch.double), inputs.T @ targets)
    weight, bias = solution[:-1].T.float().contiguous(), solution[-1].float()
    net, objective = linear_model(weight, bias)
    x, y = mnist.x_test[:300], mnist.y_test[:300]
    correct = (net(x).argmax(dim=1) == y).nonzero().squeeze(1)[:100]
    return {"x": x[correct], "y": y[correct], "objective": objective, "weight": weight, "bias": bias}


def test_fgsm_steps_eps_along_the_sign_of_the_other_class_weight_minus_the_label_weight(binary: dict) -> None:
    """The cross-entropy's input gradient of a two-class linear model is (1 − p_y)(w_y′ − w_y), so FGSM's
    point is clip(x + ε·sign(w_y′ − w_y)); it breaks exactly the digits that point misclassifies and
    returns the others unchanged."""
    x, y, weight = binary["x"], binary["y"], binary["weight"]
    eps = float(boundary_distance(weight, binary["bias"], x, y, "linf").median())
    step = eps * (weight[1 - y] - weight[y]).sign().view_as(x)
    expected = (x + step).clamp(0, 1)
    broken = binary["net"](expected).argmax(dim=1) != y
    assert 10 < int(broken.sum()) < 110
    best, fooled = fgsm(binary["objective"], x, y, Threat("linf", eps, *PIXELS))
    assert torch.equal(fooled, broken)
    torch.testing.assert_close(best[broken], expected[broken])
    assert torch.equal(best[~broken], x[~broken])


def test_bim_of_one_eps_step_is_fgsm_and_of_ten_steps_breaks_the_digits_within_eps(binary: dict) -> None:
    x, y = binary["x"], binary["y"]
    distance = boundary_distance(binary["weight"], binary["bias"], x, y, "linf")
    eps = float(distance.median())
    threat = Threat("linf", eps, *UNBOUNDED)
    one_step, fooled_once = bim(binary["objective"], x, y, threat, steps=1, step_size=eps)
    fgsm_point, fgsm_fooled = fgsm(binary["objective"], x, y, threat)
    assert torch.equal(one_step, fgsm_point) and torch.equal(fooled_once, fgsm_fooled)
    best, fooled = bim(binary["objective"], x, y, threat, steps=10)  # steps of 0.2 ε from x itself
    assert bool(fooled[distance < eps * 0.98].all()) and not bool(fooled[distance > eps * 1.02].any())
    assert float((best - x).abs().amax()) <= eps * (1 + 1e-5)
    again, _ = bim(binary["objective"], x, y, threat, steps=10)
    assert torch.equal(best, again)  # no random start


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("model", ["binary", "multiclass"])
def test_deepfool_lands_the_overshoot_past_the_nearest_linear_boundary(norm: str, model: str, request):
    """On an affine model DeepFool's first step is exact: the perturbation's size is
    (1 + 0.02)·(distance + 10⁻⁴) and every digit is misclassified there."""
    case = request.getfixturevalue(model)
    x, y = case["x"], case["y"]
    distance = boundary_distance(case["weight"], case["bias"], x, y, norm)
    moved, fooled = deepfool(case["objective"], x, y, norm, UNBOUNDED)
    assert bool(fooled.all())
    delta = (moved - x).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    torch.testing.assert_close(size, 1.02 * (distance + STABILITY), rtol=2e-3, atol=1e-6)


def test_class_gaps_of_a_softmax_are_its_logit_gaps_and_their_weight_differences(multiclass: dict) -> None:
    x, y, weight, bias = multiclass["x"][:5], multiclass["y"][:5], multiclass["weight"], multiclass["bias"]
    classes = torch.stack([y, (y + 3) % 10, (y + 7) % 10], dim=1)
    gaps, grads = multiclass["objective"].class_gaps(x, classes)
    scores = x.flatten(1) @ weight.T + bias
    chosen = scores.gather(1, classes)
    torch.testing.assert_close(gaps, chosen[:, 1:] - chosen[:, :1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        grads.flatten(2), weight[classes[:, 1:]] - weight[classes[:, :1]], atol=1e-5, rtol=1e-4
    )


def test_deepfool_names_a_prediction_it_cannot_differentiate(binary: dict) -> None:
    hard = Objective(lambda z: nn.functional.one_hot(binary["net"](z).argmax(dim=1), 2).float(), name="votes")
    with pytest.raises(ConfigError, match="the prediction of votes is not differentiable in its input"):
        deepfool(hard, binary["x"][:4], binary["y"][:4], "linf", PIXELS)


def test_deepfool_keeps_to_the_pixel_range_and_leaves_misclassified_digits_alone(multiclass: dict) -> None:
    x, y = multiclass["x"][:40], multiclass["y"][:40].clone()
    y[:5] = (y[:5] + 1) % 10  # five digits the model now gets wrong
    moved, fooled = deepfool(multiclass["objective"], x, y, "linf", PIXELS)
    assert torch.equal(moved[:5], x[:5]) and bool(fooled.all())
    assert float(moved.min()) >= 0 and float(moved.max()) <= 1


def test_minimal_eps_over_the_attacks_is_at_most_each_attacks_own() -> None:
    """On a trained LeNet and 40 real test digits: every row any one attack flips is kept, at an ε no larger
    than that attack's own, misclassified, within its ε of the digit and inside the pixel range."""
    net, mnist = xai_models.mnist_lenet()
    objective = Objective(lambda z: net(z).softmax(dim=1))
    x, y = mnist.x_test[:40], mnist.y_test[:40]
    grid = (0.02, 0.05, 0.1, 0.2)
    combined = minimal_adversarial(objective, x, y, grid, 10, PIXELS, seed=0)
    eps = dict(zip(combined.rows.tolist(), combined.eps.tolist(), strict=True))
    for attack in ATTACKS:
        alone = minimal_adversarial(objective, x, y, grid, 10, PIXELS, seed=0, attacks=(attack,))
        assert set(alone.attacks) <= {attack}
        for row, own in zip(alone.rows.tolist(), alone.eps.tolist(), strict=True):
            assert eps[row] <= own + 1e-7, f"row {row}: {eps[row]} over {attack}'s {own}"
    assert len(set(combined.attacks)) > 1
    assert (objective.predicted(combined.inputs) != y[combined.rows]).all()
    size = (combined.inputs - x[combined.rows]).flatten(1).abs().amax(dim=1)
    assert (size <= combined.eps * (1 + 1e-5)).all()
    assert float(combined.inputs.min()) >= 0 and float(combined.inputs.max()) <= 1


def test_each_digit_keeps_deepfools_eps_or_the_smallest_grid_eps_beyond_its_distance(binary: dict) -> None:
    """On a two-class linear model FGSM's signed step is the exact ℓ∞ minimiser, so the grid attacks flip
    a digit first at the smallest grid ε above its distance d (FGSM, the first of them), and DeepFool at
    1.02·(d + 10⁻⁴): each digit keeps the smaller. The grid is 1.01 times the distances of every fifth
    digit, so those digits go to FGSM. Misclassified digits are dropped; without DeepFool, so are digits
    beyond the grid."""
    x, y = binary["x"], binary["y"].clone()
    y[:10] = 1 - y[:10]  # ten digits the model gets wrong: nothing to flip
    distance = boundary_distance(binary["weight"], binary["bias"], x, binary["y"], "linf")
    grid = torch.sort(distance[10::5] * 1.01).values
    next_grid = torch.cat([grid, torch.tensor([float("inf")])])[torch.searchsorted(grid, distance)]
    deepfool_eps = 1.02 * (distance + STABILITY)
    clear = ((grid[:, None] - distance).abs() > 0.003 * distance).all(dim=0)
    decided = clear & ((deepfool_eps - next_grid).abs() > 0.003 * distance)

    found = minimal_adversarial(binary["objective"], x, y, tuple(grid.tolist()), 10, UNBOUNDED, seed=0)
    assert found.rows.tolist() == list(range(10, 120))
    sure = decided[found.rows]
    expected = torch.minimum(deepfool_eps, next_grid)[found.rows]
    torch.testing.assert_close(found.eps[sure], expected[sure], rtol=2e-3, atol=1e-6)
    winner = ["deepfool" if df else "fgsm" for df in (deepfool_eps < next_grid)[found.rows].tolist()]
    pairs = [
        (got, want) for got, want, kept in zip(found.attacks, winner, sure.tolist(), strict=True) if kept
    ]
    assert all(got == want for got, want in pairs) and {want for _, want in pairs} == {"deepfool", "fgsm"}


@pytest.mark.parametrize("attacks", [ATTACKS[1:], ("pgd",)])
def test_grid_attacks_keep_each_digit_at_the_smallest_grid_eps_beyond_its_distance(binary: dict, attacks):
    """Without DeepFool the linear model's digits are kept at the smallest grid ε above their distance (the
    first grid attack that runs takes them), and the digits beyond the grid's largest ε are dropped."""
    x, y = binary["x"], binary["y"].clone()
    y[:10] = 1 - y[:10]
    distance = boundary_distance(binary["weight"], binary["bias"], x, binary["y"], "linf")
    grid = distance[10:].quantile(torch.tensor([0.2, 0.4, 0.6, 0.8]))
    next_grid = torch.cat([grid, torch.tensor([float("inf")])])[torch.searchsorted(grid, distance)]
    clear = ((grid[:, None] - distance).abs() > 0.02 * distance).all(dim=0)
    found = minimal_adversarial(binary["objective"], x, y, tuple(grid.tolist()), 10, UNBOUNDED, 0, attacks)
    reachable = (torch.arange(120) >= 10) & (distance < grid[-1] * 0.98)
    assert set(found.rows.tolist()) >= set(reachable.nonzero().squeeze(1).tolist())
    assert (distance[found.rows] <= grid[-1] * 1.02).all() and (found.rows >= 10).all()
    assert len(found.rows) < 95  # a fifth of the correct digits lie beyond the largest grid ε
    plain = clear[found.rows]
    assert plain.sum() > 50
    torch.testing.assert_close(found.eps[plain], next_grid[found.rows][plain])
    assert set(found.attacks) == {attacks[0]}
    assert (binary["objective"].predicted(found.inputs) != y[found.rows]).all()


def test_an_unknown_attack_is_named_with_the_known_ones(binary: dict) -> None:
    with pytest.raises(ValueError, match="unknown attack cw; the attacks are deepfool, fgsm, bim, pgd"):
        minimal_adversarial(binary["objective"], binary["x"], binary["y"], (0.1,), 10, PIXELS, 0, ("cw",))
