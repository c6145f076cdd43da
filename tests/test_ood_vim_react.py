"""ViM's principal-dimension grid follows the feature dimension; ReAct's threshold comes from ID validation
activations, as OpenOOD v1.5 and the ReAct paper's code take it (issue 10, item 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from trustbench.app import CONFIG_DIR
from trustbench.data.catalog import load
from trustbench.data.loaders import TensorDataModule
from trustbench.errors import ConfigError
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.ood import evaluate_ood
from trustbench.experiment import build_module
from trustbench.methods.ood import ReAct, ViM
from trustbench.methods.ood.cache import extract_features
from trustbench.methods.ood.detector import Features
from trustbench.methods.ood.vim import principal_dim_grid
from trustbench.metrics.ood import ood_metrics


def features_of_dim(feature_dim: int) -> Features:
    features = torch.rand(20, feature_dim, generator=torch.Generator().manual_seed(0))
    return Features(logits=torch.zeros(20, 3), features=features)


def test_vim_grid_for_lenet_features_tunes_several_dims_below_84() -> None:
    assert ViM.hparam_grid(features_of_dim(84)) == {"dim": [10, 21, 42, 63]}


@pytest.mark.parametrize(
    ("feature_dim", "expected"),
    [(512, [64, 128, 256, 384]), (640, [80, 160, 256, 320, 480]), (2048, [256, 512, 1000, 1024, 1536])],
)
def test_vim_grid_keeps_openood_dims_where_the_features_are_large(feature_dim: int, expected: list) -> None:
    assert principal_dim_grid(feature_dim) == expected


@pytest.mark.parametrize("feature_dim", [2, 3, 5, 16, 84, 100, 257])
def test_every_vim_grid_value_is_a_proper_subspace_vim_can_fit(feature_dim: int) -> None:
    grid = principal_dim_grid(feature_dim)
    assert grid == sorted(set(grid)) and len(grid) >= min(feature_dim - 1, 3)
    train, head = features_of_dim(feature_dim), torch.nn.Linear(feature_dim, 3)
    for dim in grid:
        ViM(dim=dim).fit(train, head=head)  # raises for a dim outside [1, N)


def test_vim_grid_without_training_features_is_openoods() -> None:
    assert ViM.hparam_grid() == {"dim": [256, 1000]}


def test_react_is_fitted_on_the_validation_split() -> None:
    assert ReAct.fit_split == "val"
    assert ViM.fit_split == "train"


def test_react_threshold_is_numpys_percentile_of_all_activations_pooled() -> None:
    features = torch.rand(50, 6, generator=torch.Generator().manual_seed(1))
    head = torch.nn.Linear(6, 3)
    react = ReAct(percentile=85).fit(Features(logits=head(features), features=features), head=head)
    assert react._threshold == pytest.approx(float(np.percentile(features.numpy().ravel(), 85)), rel=1e-12)


def react_context(tmp_path: Path, *overrides: str) -> EvaluationContext:
    """ReAct through the OOD suite on a randomly initialised LeNet over synthetic bars (no training needed:
    the suite only reads features), its percentile fixed so the suite does not tune."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "data=synthetic_image",
                "backbone=lenet",
                "method=react",
                "+method.detector.hparams.percentile=90",
                f"paths.output_dir={tmp_path}",
                *overrides,
            ],
        )
    dataset = load(cfg.data.name, cfg.paths.data_dir)
    datamodule = TensorDataModule(dataset, cfg.data.val_size, cfg.data.batch_size, cfg.seed)
    torch.manual_seed(0)
    backbone = instantiate(cfg.backbone.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    module = build_module(cfg, backbone, dataset.num_classes)
    return EvaluationContext(cfg, module, datamodule, dataset, tmp_path)


def test_the_ood_suite_fits_react_on_validation_features_not_training_ones(tmp_path: Path) -> None:
    context = react_context(tmp_path)
    metrics = evaluate_ood(context)
    backbone, datamodule = context.module.backbone, context.datamodule

    def expected(fit_on: torch.Tensor) -> dict[str, float]:
        react = ReAct(percentile=90).fit(extract_features(backbone, fit_on, 512), head=backbone.head)
        id_scores = react.score(extract_features(backbone, datamodule.x_test, 512))
        x_ood = context.ood_inputs(["noise_uniform"])["noise_uniform"]
        return ood_metrics(id_scores, react.score(extract_features(backbone, x_ood, 512)))

    on_val, on_train = expected(datamodule.x_val), expected(datamodule.x_train)
    reported = {key: metrics[f"ood/noise_uniform/{key}"] for key in on_val}
    assert reported == pytest.approx(on_val, abs=1e-9)
    assert reported != pytest.approx(on_train, abs=1e-6)


def test_react_without_a_validation_split_says_to_set_val_size(tmp_path: Path) -> None:
    context = react_context(tmp_path, "data.val_size=0")
    with pytest.raises(ConfigError, match=r"'react' fits on the ID validation split.*data.val_size above 0"):
        evaluate_ood(context)
