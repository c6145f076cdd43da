"""OOD detection through `trustbench run`: one trained classifier, every detector, tuned, cached."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import result, trustbench

from trustbench.cli import config_choices

TINY = ["data=synthetic_image", "backbone=lenet", "trainer.max_epochs=15", "data.batch_size=32"]
DETECTOR_METHODS = [
    name
    for name in config_choices("method")
    if "detector" in (Path("configs/method") / f"{name}.yaml").read_text()
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every detector in one sweep, sharing one output dir (so one model store and one feature cache),
    without figures (28 of them; test_plots_false_draws_nothing_and_keeps_every_metric draws energy's)."""
    root = tmp_path_factory.mktemp("ood")
    trustbench(
        "run",
        "-m",
        *TINY,
        "plots=false",
        f"method={','.join(DETECTOR_METHODS)}",
        f"paths.output_dir={root}",
        f"hydra.sweep.dir={root / 'sweep'}",
        "hydra.sweep.subdir=${method.name}",
    )
    return root


def test_all_fourteen_detectors_are_configured() -> None:
    assert len(DETECTOR_METHODS) == 14


@pytest.mark.parametrize("method", DETECTOR_METHODS)
def test_each_detector_reports_every_set_near_far_and_accuracy(sweep: Path, method: str) -> None:
    record = result(sweep / "sweep" / method)
    assert record["status"] == "ok", record["error"]
    metrics = record["metrics"]
    for name in ("corrupted", "noise_gaussian", "noise_uniform", "near", "far"):
        for key in ("auroc", "aupr_in", "aupr_out", "fpr95", "oscr"):
            assert 0.0 <= metrics[f"ood/{name}/{key}"] <= 1.0
    assert metrics["ood/near/auroc"] == metrics["ood/corrupted/auroc"]
    far = (metrics["ood/noise_gaussian/auroc"] + metrics["ood/noise_uniform/auroc"]) / 2
    assert metrics["ood/far/auroc"] == pytest.approx(far)
    assert metrics["cls/acc"] > 0.9


def test_one_classifier_is_trained_for_all_detectors(sweep: Path) -> None:
    assert len(list((sweep / ".models").glob("*.pt"))) == 1
    accuracies = {result(sweep / "sweep" / m)["metrics"]["cls/acc"] for m in DETECTOR_METHODS}
    assert len(accuracies) == 1
    trained = [m for m in DETECTOR_METHODS if (sweep / "sweep" / m / "checkpoints").exists()]
    assert len(trained) == 1


def test_plots_false_draws_nothing_and_keeps_every_metric(sweep: Path, tmp_path: Path) -> None:
    trustbench(
        "run",
        *TINY,
        "method=energy",
        f"paths.output_dir={sweep}",  # the sweep's model store and feature cache: the same classifier
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    drawn = sorted(path.name for path in (tmp_path / "run" / "plots").iterdir())
    assert drawn == ["ood_roc.png", "ood_scores.png"] and not (sweep / "sweep" / "energy" / "plots").exists()
    assert result(tmp_path / "run")["metrics"] == result(sweep / "sweep" / "energy")["metrics"]


def test_features_are_extracted_once_per_split(sweep: Path) -> None:
    # train, val (tuning rows), test, validation OOD, and the three test OOD sets
    assert len(list((sweep / ".cache" / "features").glob("*.pt"))) == 7


def test_free_hyperparameters_are_tuned_on_the_validation_ood_set(sweep: Path) -> None:
    knn = result(sweep / "sweep" / "knn")["metrics"]
    assert knn["hp/k"] > 0 and 0.0 <= knn["ood/val/auroc"] <= 1.0
    assert {"hp/temperature", "hp/noise"} <= set(result(sweep / "sweep" / "odin")["metrics"])
    assert "ood/val/auroc" not in result(sweep / "sweep" / "msp")["metrics"]


def test_fixed_hyperparameters_are_not_tuned(tmp_path: Path) -> None:
    trustbench(
        "run",
        *TINY,
        "method=knn",
        "+method.detector.hparams.k=5",
        f"paths.output_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    metrics = result(tmp_path / "run")["metrics"]
    assert metrics["hp/k"] == 5 and "ood/val/auroc" not in metrics


def test_table_has_one_row_per_detector(sweep: Path) -> None:
    out = trustbench("table", str(sweep / "sweep"), "--by", "method", "--metrics", "ood/far/auroc").stdout
    assert sum(line.startswith("| ") and "ours" in line for line in out.splitlines()) == 14


def test_ood_detection_on_tabular_data_stops_before_any_work(tmp_path: Path) -> None:
    proc = trustbench(
        "run", "data=synthetic", "backbone=mlp", "method=energy", f"hydra.run.dir={tmp_path}", check=False
    )
    assert proc.returncode == 1 and "defines no ood_benchmark" in proc.stderr
