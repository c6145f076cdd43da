"""Attacks and adversarial training: on a linear classifier of real MNIST digits the smallest adversarial
perturbation is known in closed form (|margin| / ‖w‖₁ in ℓ∞, / ‖w‖₂ in ℓ2), so PGD and APGD must break
exactly the digits closer than ε; and the adversarial suite's checks through `trustbench run`."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import torch
from conftest import result, trustbench
from real_data import real
from torch import nn

from trustbench.attacks.apgd import apgd, checkpoints
from trustbench.attacks.objective import Objective, is_stochastic
from trustbench.attacks.pgd import Threat, pgd
from trustbench.attacks.settings import AdversarialSettings
from trustbench.backbones.lenet import LeNet
from trustbench.data.arrays import ArrayDataset
from trustbench.errors import ConfigError
from trustbench.methods.explanations.adversarial_training import AdversarialTraining

UNBOUNDED = (torch.tensor(-1e6), torch.tensor(1e6))


@pytest.fixture(scope="module")
def mnist() -> ArrayDataset:
    return real("mnist")


@pytest.fixture(scope="module")
def linear(mnist: ArrayDataset) -> dict:
    """A two-class linear model z = (0, w·x + b) on 120 real test digits, with each digit's exact ℓ∞ and
    ℓ2 distance to the decision boundary."""
    x = mnist.x_test[:120]
    w = torch.randn(784, generator=torch.Generator().manual_seed(0)) * 0.05
    margin = x.flatten(1) @ w
    b = -margin.median()
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.stack([torch.zeros(784), w]))
        net[1].bias.copy_(torch.tensor([0.0, b]))
    score = margin + b
    return {
        "objective": Objective(lambda z: net(z).softmax(dim=1)),
        "x": x,
        "y": (score > 0).long(),
        "linf": score.abs() / w.abs().sum(),
        "l2": score.abs() / w.norm(),
    }


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("attack", ["pgd", "apgd"])
def test_attacks_break_exactly_the_points_within_eps_of_a_linear_boundary(
    linear: dict, norm: str, attack: str
) -> None:
    eps = float(linear[norm].median())
    threat = Threat(norm, eps, *UNBOUNDED)
    run = functools.partial(apgd if attack == "apgd" else pgd, steps=20, restarts=1)
    best, fooled = run(linear["objective"], linear["x"], linear["y"], threat, generator=torch.Generator())
    within = linear[norm] < eps * 0.98
    beyond = linear[norm] > eps * 1.02
    assert bool(fooled[within].all()), "a point within eps of the boundary survived"
    assert not bool(fooled[beyond].any()), "a point beyond eps was broken: the projection leaks"
    distance = (best - linear["x"]).flatten(1)
    size = distance.abs().amax(1) if norm == "linf" else distance.norm(dim=1)
    assert float(size.max()) <= eps * (1 + 1e-5)


def test_projection_clamps_linf_and_scales_l2_by_hand() -> None:
    x, far = torch.zeros(1, 2), torch.tensor([[3.0, -4.0]])
    assert Threat("linf", 1.0, *UNBOUNDED).project(far, x).tolist() == [[1.0, -1.0]]
    assert torch.allclose(Threat("l2", 1.0, *UNBOUNDED).project(far, x), torch.tensor([[0.6, -0.8]]))
    box = Threat("linf", 10.0, torch.tensor(0.0), torch.tensor(1.0))
    assert box.project(far, x).tolist() == [[1.0, 0.0]]  # the valid range wins


def test_apgd_checkpoints_follow_the_papers_schedule() -> None:
    # p = 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (steps shrink by 0.03, at least 0.06)
    assert sorted(checkpoints(100)) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_eot_averages_the_gradient_of_a_stochastic_prediction() -> None:
    torch.manual_seed(0)
    weight = torch.tensor([1.0, -1.0])

    def noisy(x: torch.Tensor) -> torch.Tensor:  # logits (0, w·x + noise): gradient is w on average
        score = x @ weight + torch.randn(len(x))
        return torch.stack([torch.zeros_like(score), score], dim=1).softmax(dim=1)

    x, y = torch.zeros(1, 2), torch.tensor([1])
    assert is_stochastic(noisy, x)
    _, grad = Objective(noisy, eot_samples=1500).gradient(x, y)
    # d(−log σ(s))/dx = −(1 − σ(s))·w; E[1 − σ(s)] = 0.5 for s ~ N(0, 1) by symmetry
    assert torch.allclose(grad, torch.tensor([[-0.5, 0.5]]), atol=0.03)  # standard error 0.006


def test_adversarial_training_takes_its_loss_at_a_worse_point_than_the_clean_one(mnist: ArrayDataset) -> None:
    torch.manual_seed(0)
    module = AdversarialTraining(
        LeNet((1, 28, 28), 10), 10, functools.partial(torch.optim.SGD, lr=0.1), epsilon=0.1, steps=5
    )
    x, y = mnist.x_train[:64], mnist.y_train[:64]
    clean = nn.functional.cross_entropy(module.backbone(x), y)
    assert module.training_loss(x, y).item() > clean.item() + 0.01
    assert module.backbone.training  # the attack ran in evaluation mode and handed training mode back


@pytest.mark.slow  # the experiment smoke test runs the suite end to end in the default run
def test_the_adversarial_suite_reports_curves_and_passes_its_checks(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "data=synthetic_image",
        "backbone=mlp",  # LeNet predicts one class for every bar image after a few epochs
        "trainer.max_epochs=3",
        "data.batch_size=32",
        "+data.suites=[adversarial]",  # synthetic_image lists no suites
        "+data.adversarial={points: 40, eps_linf: [0, 0.1], eps_l2: [0, 1], steps: 10, apgd_steps: 10}",
        f"paths.output_dir={tmp_path / 'outputs'}",
        f"hydra.run.dir={run_dir}",
    )
    metrics = result(run_dir)["metrics"]
    assert metrics["adv/check/reaches_zero"] == 1.0 and metrics["adv/check/large_eps_acc"] == 0.0
    assert metrics["adv/check/eot_samples"] == 1.0 and metrics["adv/check/stochastic"] == 0.0
    for attack in ("pgd_linf", "apgd_ce"):
        assert metrics[f"adv/{attack}/0.1/acc"] <= metrics[f"adv/{attack}/0/acc"]
    assert metrics["adv/pgd_l2/1/acc"] <= metrics["adv/pgd_l2/0/acc"]
    assert (run_dir / "plots" / "adv_robust_accuracy.png").is_file()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"points": 0}, "data.adversarial: points, steps, restarts and check_factor must be >= 1"),
        ({"epsilon": 0.1}, "data.adversarial has no key epsilon; its keys are apgd_steps, check_eps,"),
        (0.1, "data.adversarial must be a block of settings, got 0.1"),
    ],
)
def test_bad_adversarial_settings_are_refused_in_one_line(settings: object, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        AdversarialSettings.from_config(settings)
