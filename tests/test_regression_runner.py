"""Regression through `trustbench run`, as a user runs it: every method on real Boston rows, one multirun;
rotated MNIST with Fashion-MNIST as OOD; mismatched task types stopped before any work."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import result, trustbench
from hydra import compose, initialize_config_dir

from trustbench.app import CONFIG_DIR
from trustbench.config import check_choices
from trustbench.errors import ConfigError
from trustbench.tasks import REGRESSION_METHODS

METHODS = ("gaussian", "slurp", "conformal", "car", "mc_dropout", "ensemble")


@pytest.fixture(scope="module")
def boston_sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("boston")
    trustbench(
        "run",
        "-m",
        "data=boston",
        f"method={','.join(METHODS)}",
        "backbone.net.hidden_sizes=[16]",
        "trainer.max_epochs=3",
        "data.batch_size=64",
        f"paths.output_dir={root}",
        f"hydra.sweep.dir={root / 'sweep'}",
        "hydra.sweep.subdir=${method.name}",
    )
    return root


def test_every_regression_method_reports_the_reg_metrics_in_target_units(boston_sweep: Path) -> None:
    for method in METHODS:
        record = result(boston_sweep / "sweep" / method)
        assert record["status"] == "ok", (method, record["error"])
        metrics = record["metrics"]
        assert 0 < metrics["reg/rmse"] < 20, method  # $1000s: the targets span 5..50
        assert 0 <= metrics["reg/coverage90"] <= 1 and metrics["reg/width90"] > 0
        assert math.isfinite(metrics["reg/nll"]) and math.isfinite(metrics["reg/ause_rmse"])
        assert {"reg/ause_absrel", "reg/aurg_rmse", "reg/qce", "reg/spearman"} <= set(metrics)
        for plot in ("sparsification.png", "calibration.png", "intervals.png"):
            assert (boston_sweep / "sweep" / method / "plots" / plot).stat().st_size > 10_000


def test_slurp_and_conformal_reuse_the_stored_gaussian_regressor(boston_sweep: Path) -> None:
    """One stored model for the three runs of the gaussian recipe: same mean predictions, same RMSE."""
    stored = list((boston_sweep / ".models").glob("*.pt"))
    rmse = {
        m: result(boston_sweep / "sweep" / m)["metrics"]["reg/rmse"]
        for m in ("gaussian", "slurp", "conformal")
    }
    assert len({round(value, 6) for value in rmse.values()}) == 1
    assert len(stored) == 1
    conformal = result(boston_sweep / "sweep" / "conformal")["metrics"]
    assert conformal["reg/conformal_q"] > 0


def test_ensemble_and_mc_dropout_report_epistemic_variance(boston_sweep: Path) -> None:
    for method in ("ensemble", "mc_dropout"):
        metrics = result(boston_sweep / "sweep" / method)["metrics"]
        assert metrics["reg/epistemic"] > 0 and metrics["reg/aleatoric"] > 0
    assert result(boston_sweep / "sweep" / "gaussian")["metrics"]["reg/epistemic"] == 0


def test_the_table_puts_the_methods_side_by_side(boston_sweep: Path) -> None:
    out = trustbench("table", str(boston_sweep / "sweep"), "--by", "method", "--metrics", "reg/rmse").stdout
    assert all(method in out for method in METHODS)


@pytest.mark.slow  # a second process and MNIST: ~12 s of CPU
def test_rotated_mnist_scores_fashion_mnist_with_the_uncertainty(tmp_path: Path) -> None:
    trustbench(
        "run",
        "data=rotated_mnist",
        "method=car",
        "backbone=mlp",
        "data.train_rows=400",
        "data.test_rows=100",
        "data.val_size=50",
        "trainer.max_epochs=1",
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    metrics = result(tmp_path / "run")["metrics"]
    assert 0 <= metrics["reg/ood/fashion_mnist/auroc"] <= 1
    assert "reg/ause_absrel" not in metrics  # angles can be negative: no AbsRel
    assert json.loads((tmp_path / "run" / "result.json").read_text())["config"]["data"]["rotation"] == 45


def test_a_classification_method_on_regression_data_stops_with_one_line(tmp_path: Path) -> None:
    proc = trustbench("run", "data=boston", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert line == (
        "trustbench: method 'erm' supports classification tasks, but data 'boston' is a regression task; "
        "use one of gaussian, mc_dropout, ensemble, car, slurp, conformal (trustbench list method)"
    )
    assert not (tmp_path / "run").exists()  # stopped before Hydra started the job


@pytest.mark.parametrize("method", ["slurp", "car", "gaussian", "conformal"])
def test_a_regression_method_on_classification_data_is_refused_by_the_config_check(method: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=synthetic", f"method={method}"])
    with pytest.raises(
        ConfigError,
        match=f"method '{method}' supports regression tasks, but data 'synthetic' is a classification task",
    ):
        check_choices(cfg)


@pytest.mark.parametrize("method", REGRESSION_METHODS)
def test_every_method_the_error_message_offers_declares_regression(method: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=boston", f"method={method}"])
    check_choices(cfg)
    assert "regression" in cfg.method.task_types


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=mnist_distance", "backbone=lenet"], "has a target per pixel, but backbone 'lenet' gives one"),
        (["data=boston", "backbone=encoder_decoder"], "gives an output per pixel, but data 'boston' has one"),
    ],
)
def test_dense_targets_and_dense_backbones_go_together(overrides: list[str], message: str) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["method=gaussian", *overrides])
    with pytest.raises(ConfigError, match=message):
        check_choices(cfg)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["data=boston", "method=car", "method.module.spacing=cubic"],
            "method.module.spacing takes uniform or log",
        ),
        (["data=boston", "method=car", "method.module.bins=1"], "method.module.bins takes an integer >= 2"),
        (["data=boston", "method=gaussian", "data.split=-1"], "data.split takes an integer >= 0"),
        (
            ["data=rotated_mnist", "method=gaussian", "data.rotation=200"],
            r"data.rotation takes degrees in \(0, 180\]",
        ),
        (
            ["data=boston", "method=slurp", "method.side_learner.loss=l1"],
            "method.side_learner.loss takes bce or nll",
        ),
        (["data=boston", "method=conformal", "method.conformal.score=abs"], "takes residual or normalized"),
        (
            ["data=boston", "method=gaussian", "method.module.beta=3"],
            r"takes a number in \[0, 1\]",
        ),
    ],
)
def test_a_regression_setting_out_of_range_is_refused_by_the_config_check(overrides, message) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    with pytest.raises(ConfigError, match=message):
        check_choices(cfg)
