"""DDU's density score stays finite and ordered on a barely trained network (issue 10, item 2).

Three SGD steps of LeNet on real Fashion-MNIST leave ReLU units that never fire on the training set; their
zero variances are what made the reference's jitter search settle on ε ≈ 1e-308 and send the density of
MNIST digits (which do fire them) to 1e302 in float64 and to inf in float32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import result, trustbench
from sklearn.metrics import roc_auc_score
from test_data_catalog import load_mirrored
from torch.distributions import MultivariateNormal
from torch.nn import functional as F
from toy_problems import SGD

from trustbench.backbones.lenet import LeNet
from trustbench.evaluation.context import predict_all
from trustbench.methods.ood.cache import extract_features
from trustbench.methods.uncertainty.ddu import DDU, jitter_floor
from trustbench.metrics.ood import ood_metrics

TRAIN_ROWS, EVAL_ROWS, BATCH, STEPS = 5000, 2000, 128, 3


@pytest.fixture(scope="module")
def barely_trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """DDU on LeNet after 3 SGD steps (DDU's recipe: lr 0.1, momentum 0.9), Gaussians fitted on 5k
    Fashion-MNIST training images; its features and scores on Fashion-MNIST and MNIST test images."""
    data_dir = tmp_path_factory.mktemp("data")
    fashion, mnist = load_mirrored("fashion_mnist", data_dir), load_mirrored("mnist", data_dir)
    torch.manual_seed(5)  # an initialisation under which the reference's jitter search settles on 2.2e-308
    module = DDU(LeNet((1, 28, 28), 10), 10, SGD)
    optimizer = module.configure_optimizers()
    for step in range(STEPS):
        rows = slice(step * BATCH, (step + 1) * BATCH)
        optimizer.zero_grad()
        module.training_loss(fashion.x_train[rows], fashion.y_train[rows]).backward()
        optimizer.step()
    x_train, y_train = fashion.x_train[:TRAIN_ROWS], fashion.y_train[:TRAIN_ROWS]
    module.fit_gaussians(x_train, y_train)
    inputs = {"fashion": fashion.x_test[:EVAL_ROWS], "mnist": mnist.x_test[:EVAL_ROWS]}
    return {
        "module": module,
        "train_features": extract_features(module.backbone, x_train, 1024).features,
        "y_train": y_train,
        "features": {name: extract_features(module.backbone, x, 1024).features for name, x in inputs.items()},
        "scores": {name: predict_all(module, x, 1024).uncertainty for name, x in inputs.items()},
    }


def test_the_barely_trained_network_has_units_that_never_fire_on_its_training_set(barely_trained) -> None:
    dead = (barely_trained["train_features"] == 0).all(dim=0)
    assert int(dead.sum()) >= 1
    assert bool((barely_trained["features"]["mnist"][:, dead] > 0).any())  # MNIST digits fire some of them


def test_jitter_is_at_least_the_rounding_floor_of_the_largest_variance(barely_trained) -> None:
    features = barely_trained["train_features"].double()
    labels = barely_trained["y_train"]
    covariances = torch.stack([torch.cov(features[labels == c].T) for c in range(10)])
    floor = 84 * 2.0**-53 * float(covariances.diagonal(dim1=1, dim2=2).max())
    assert jitter_floor(covariances) == pytest.approx(floor, rel=1e-12)
    jitter = float(barely_trained["module"].jitter)
    assert floor <= jitter < 10 * floor  # the first of the reference's powers of ten at or above it


def test_density_scores_are_finite_float64_on_id_and_ood_images(barely_trained) -> None:
    for scores in barely_trained["scores"].values():
        assert scores.dtype == torch.float64
        assert bool(torch.isfinite(scores).all())


def test_density_scores_equal_torch_multivariate_normal_with_the_fitted_jitter(barely_trained) -> None:
    """The reference implementation's computation (MultivariateNormal.log_prob, logsumexp over classes)."""
    module = barely_trained["module"]
    features, labels = barely_trained["train_features"].double(), barely_trained["y_train"]
    identity = torch.eye(features.shape[1], dtype=torch.float64)
    covariances = torch.stack([torch.cov(features[labels == c].T) for c in range(10)])
    gaussians = MultivariateNormal(
        module.class_means, covariance_matrix=covariances + module.jitter * identity
    )
    for name, scores in barely_trained["scores"].items():
        expected = -gaussians.log_prob(barely_trained["features"][name].double()[:, None, :]).logsumexp(dim=1)
        torch.testing.assert_close(scores, expected, rtol=1e-6, atol=1e-6)


def test_ood_metrics_rank_the_float64_scores_as_sklearn_does(barely_trained) -> None:
    fashion, mnist = barely_trained["scores"]["fashion"], barely_trained["scores"]["mnist"]
    labels = [0] * len(fashion) + [1] * len(mnist)
    expected = roc_auc_score(labels, torch.cat([fashion, mnist]).numpy())
    assert ood_metrics(fashion, mnist)["auroc"] == pytest.approx(expected, abs=1e-6)
    assert torch.cat([fashion, mnist]).unique().numel() == 2 * EVAL_ROWS  # no ties made by rounding


def test_ood_metrics_rank_scores_that_differ_only_beyond_float32() -> None:
    score_id = torch.tensor([1e8, 1e8 + 0.5, 1e8 + 1], dtype=torch.float64)
    score_ood = torch.tensor([1e8 + 1.5, 1e8 + 2, 1e8 + 2.5], dtype=torch.float64)
    assert torch.unique(torch.cat([score_id, score_ood]).float()).numel() == 1  # float32 ties them all
    metrics = ood_metrics(score_id, score_ood)
    assert (metrics["auroc"], metrics["fpr95"]) == (1.0, 0.0)


def test_predict_all_keeps_a_float64_uncertainty_and_float32_probabilities(barely_trained) -> None:
    module = barely_trained["module"]
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    prediction = predict_all(module, x, batch_size=2)
    assert (prediction.probs.dtype, prediction.uncertainty.dtype) == (torch.float32, torch.float64)
    with torch.no_grad():
        features = module.backbone.features(x)
    # rtol: the convolutions round differently in batches of 2 than of 5
    torch.testing.assert_close(prediction.uncertainty, -module.log_density(features), rtol=1e-5, atol=0)
    torch.testing.assert_close(prediction.probs, F.softmax(module.backbone.head(features), dim=1))


@pytest.mark.slow
def test_the_issue_command_finishes_with_finite_ood_metrics(tmp_path: Path) -> None:
    """`trustbench run method=ddu data=fashion_mnist trainer.max_epochs=1 +trainer.limit_train_batches=3`
    stopped with "score_ood contains NaN or infinite values" (seed 1 on this machine; about 30 s)."""
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "method=ddu",
        "data=fashion_mnist",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=3",
        "seed=1",
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
    )
    metrics = result(run_dir)["metrics"]
    for name in ("mnist", "animal_mnist"):
        assert 0.0 <= metrics[f"ood/{name}/auroc"] <= 1.0
    assert metrics["ddu/jitter"] > 0
