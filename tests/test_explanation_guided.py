"""Explanation-guided training on decoy MNIST: the data, the differentiable Grad-CAM (against captum), the
three losses on hand-made cases, and (slow) RRR moving a LeNet's attention off the decoy square."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from hydra import compose, initialize_config_dir
from real_data import real
from torch.nn import functional as F
from xai_models import mnist_lenet

from trustbench.app import CONFIG_DIR
from trustbench.backbones.lenet import LeNet
from trustbench.config import check_choices
from trustbench.data.decoy import PATCH, decoy_dataset, degrade_annotations
from trustbench.errors import ConfigError
from trustbench.evaluation.annotations import mask_scores
from trustbench.methods.explanations.guided import (
    Gradia,
    RightForTheRightReasons,
    RobustExplanationSupervision,
    best_threshold,
    grad_cam_map,
)

SGD = functools.partial(torch.optim.SGD, lr=0.05)


@pytest.fixture(scope="module")
def decoy():
    """Decoy MNIST made from the first 6000 training and 1000 test digits."""
    mnist = real("mnist")
    small = dataclasses.replace(
        mnist,
        x_train=mnist.x_train[:6000],
        y_train=mnist.y_train[:6000],
        x_test=mnist.x_test[:1000],
        y_test=mnist.y_test[:1000],
    )
    return decoy_dataset(small)


def square_shades(x: torch.Tensor, annotation: torch.Tensor) -> torch.Tensor:
    """The value of each image's decoy square (its pixels all share it)."""
    return (x[:, 0] * (annotation == -1)).flatten(1).sum(1) / PATCH**2


def test_training_squares_give_the_label_and_test_squares_do_not(decoy) -> None:
    shade_train = square_shades(decoy.x_train[:2000], decoy.annotations_train[:2000])
    assert torch.allclose(shade_train, 1 - 0.1 * decoy.y_train[:2000].float(), atol=1e-6)
    shade_test = square_shades(decoy.x_test[:2000], decoy.annotations_test[:2000])
    assert not torch.isclose(shade_test, 1 - 0.1 * decoy.y_test[:2000].float(), atol=1e-3).any()
    assert ((decoy.annotations_test == -1).flatten(1).sum(1) == PATCH**2).all()
    digit = decoy.annotations_train[:100] == 1
    bright = (decoy.x_train[:100, 0] > 0.5) & (decoy.annotations_train[:100] != -1)
    assert digit[bright].all()  # every stroke pixel outside the square is annotated relevant
    assert 0.15 < digit.float().mean() < 0.35  # the grown strokes of a digit: a fifth to a third of the image


def test_degraded_annotations_drop_or_shift_only_the_training_ones(decoy) -> None:
    partial = degrade_annotations(decoy, keep=0.5, noise=0.0, seed=0)
    kept = (partial.annotations_train != 0).sum() / (decoy.annotations_train != 0).sum()
    assert 0.48 < float(kept) < 0.52
    assert torch.equal(partial.annotations_test, decoy.annotations_test)
    shifted = degrade_annotations(decoy, keep=1.0, noise=1.0, seed=0)
    moved = (shifted.annotations_train[:500] != decoy.annotations_train[:500]).flatten(1).any(1)
    assert float(moved.float().mean()) > 0.95  # all but the draws of a (0, 0) shift, 1 in 81
    with pytest.raises(ValueError, match="0 < keep <= 1"):
        degrade_annotations(decoy, keep=0.0, noise=0.0, seed=0)


def test_differentiable_grad_cam_equals_captums_layer_grad_cam() -> None:
    net, dataset = mnist_lenet()
    x, target = dataset.x_test[:16], dataset.y_test[:16]
    _, ours = grad_cam_map(net, x, target, graph=False)
    cam = LayerGradCam(net, net.conv[3]).attribute(x, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, (28, 28), interpolate_mode="bilinear")[:, 0].detach()
    low, high = cam.flatten(1).amin(1).view(-1, 1, 1), cam.flatten(1).amax(1).view(-1, 1, 1)
    torch.testing.assert_close(ours.detach(), (cam - low) / (high - low + 1e-8), atol=1e-5, rtol=1e-4)


def test_rrr_penalises_only_gradients_on_the_irrelevant_region() -> None:
    torch.manual_seed(0)
    module = RightForTheRightReasons(LeNet((1, 28, 28), 10), 10, SGD, lam=1e6)  # untrained: tiny gradients
    x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
    unknown = torch.zeros(4, 28, 28, dtype=torch.int8)
    plain = F.cross_entropy(module.backbone(x), y)
    assert torch.allclose(module.guided_loss(x, y, unknown), plain)
    corner = unknown.clone()
    corner[:, :4, :4] = -1
    loss = module.guided_loss(x, y, corner)
    assert loss > plain
    loss.backward()  # the penalty trains the weights (double backpropagation)
    assert module.backbone.head.weight.grad.abs().sum() > 0


def test_gradia_and_res_are_cross_entropy_plus_a_nonnegative_term() -> None:
    torch.manual_seed(0)
    x, y = torch.rand(4, 1, 28, 28), torch.arange(4)
    annotation = torch.zeros(4, 28, 28, dtype=torch.int8)
    annotation[:, 8:20, 8:20], annotation[:, :4, :4] = 1, -1
    for cls in (Gradia, RobustExplanationSupervision):
        module = cls(LeNet((1, 28, 28), 10), 10, SGD, lam=1.0)
        plain = F.cross_entropy(module.backbone(x), y)
        loss = module.guided_loss(x, y, annotation)
        assert loss > plain
        loss.backward()
        assert module.backbone.conv[0].weight.grad.abs().sum() > 0


def test_the_threshold_solver_picks_the_cut_that_agrees_with_most_signs() -> None:
    cam = torch.tensor([[[0.9, 0.8, 0.3, 0.1]]])
    sign = torch.tensor([[[1.0, 1.0, -1.0, -1.0]]])
    threshold = best_threshold(cam, sign, candidates=9)  # candidates 0.1, 0.2, ..., 0.9
    assert 0.3 <= float(threshold) < 0.8  # every sign agrees; the smallest such cut is 0.3
    assert float(threshold) == pytest.approx(0.3)


def test_mask_scores_by_hand() -> None:
    selected = torch.tensor([[[True, True, False, False]]])
    relevant = torch.tensor([[[True, False, True, False]]])
    scores = mask_scores(selected, relevant)
    assert scores == {"xai/mask/iou": pytest.approx(1 / 3), "xai/mask/precision": 0.5, "xai/mask/recall": 0.5}
    nothing = mask_scores(torch.zeros_like(selected), relevant)
    assert nothing == {"xai/mask/iou": 0.0, "xai/mask/precision": 0.0, "xai/mask/recall": 0.0}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["method=rrr", "data=mnist"],
            "method 'rrr' trains on per-pixel annotations, but data 'mnist' has none",
        ),
        (
            ["method=grad_cam", "backbone=mlp"],
            "method 'grad_cam' reads the last convolution layer, but backbone",
        ),
    ],
)
def test_impossible_combinations_stop_at_the_config_check(overrides: list[str], message: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with pytest.raises(ConfigError, match=message):
        check_choices(cfg)


@pytest.mark.slow
def test_rrr_moves_a_lenets_saliency_off_the_decoy(decoy) -> None:
    torch.manual_seed(0)
    shares = {}
    for lam in (0.0, 10.0):
        torch.manual_seed(0)
        module = RightForTheRightReasons(
            LeNet((1, 28, 28), 10), 10, functools.partial(torch.optim.Adam, lr=2e-3), lam=lam
        )
        optimizer = module.configure_optimizers()
        for rows in torch.randperm(6000, generator=torch.Generator().manual_seed(0)).split(64):
            optimizer.zero_grad()
            module.guided_loss(
                decoy.x_train[rows], decoy.y_train[rows], decoy.annotations_train[rows]
            ).backward()
            optimizer.step()
        x = decoy.x_test[:500].requires_grad_(True)
        logits = module.backbone.eval()(x)
        (grad,) = torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), x)
        saliency = grad.abs()[:, 0]
        shares[lam] = float(
            (
                (saliency * (decoy.annotations_test[:500] == -1)).flatten(1).sum(1)
                / saliency.flatten(1).sum(1)
            ).mean()
        )
    assert shares[10.0] < shares[0.0] / 5
