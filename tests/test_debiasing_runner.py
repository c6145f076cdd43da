"""Debiasing through `trustbench run`: group-carrying batches, the fairness suite for every method on
data with groups, one-line errors, and the accuracy-fairness trade-off plot of a lambda sweep."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import result, trustbench

COMPAS = ["data=compas", "trainer.max_epochs=2"]


@pytest.fixture(scope="module")
def lam_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ERM, and w2reg at two weights, on real COMPAS, 2 epochs each."""
    root = tmp_path_factory.mktemp("debias")
    sweep = [f"paths.output_dir={root}", f"hydra.sweep.dir={root / 'sweep'}"]
    trustbench("run", "-m", *COMPAS, "method=erm", *sweep, "hydra.sweep.subdir=erm")
    trustbench(
        "run", "-m", *COMPAS, "method=w2reg", "method.lam=0.1,10", *sweep,
        "hydra.sweep.subdir=${method.name}_${method.lam}",
    )  # fmt: skip
    return root / "sweep"


def test_a_debiasing_run_reports_accuracy_and_fairness_per_group_and_intersection(lam_sweep: Path) -> None:
    run = lam_sweep / "w2reg_10"
    metrics = result(run)["metrics"]
    assert 0.55 < metrics["cls/acc"] < 0.8
    for key in ("di", "spd", "dpd", "eod", "aod", "eopd", "w2"):
        assert f"fair/race/{key}" in metrics and f"fair/sex/{key}" in metrics
    assert {"fair/racexsex/dpd", "fair/racexsex/race=0,sex=1/tpr", "fair/race/0/sel"} <= set(metrics)
    assert (run / "plots" / "fairness_groups.png").is_file()


def test_erm_on_data_with_groups_is_scored_by_the_same_fairness_suite(lam_sweep: Path) -> None:
    erm, w2reg = result(lam_sweep / "erm")["metrics"], result(lam_sweep / "w2reg_0.1")["metrics"]
    assert {k for k in erm if k.startswith("fair/")} == {k for k in w2reg if k.startswith("fair/")}


def test_a_larger_w2_weight_brings_the_race_groups_closer(lam_sweep: Path) -> None:
    weak, strong = (result(lam_sweep / f"w2reg_{lam}")["metrics"] for lam in ("0.1", "10"))
    assert strong["fair/race/w2"] < weak["fair/race/w2"]


def test_table_draws_the_tradeoff_of_the_sweep(lam_sweep: Path, tmp_path: Path) -> None:
    plot = tmp_path / "tradeoff.png"
    proc = trustbench(
        "table", str(lam_sweep), "--by", "method,method.lam", "--tradeoff", "fair/race/di,fair/race/w2",
        "--plot", str(plot),
    )  # fmt: skip
    assert plot.stat().st_size > 10_000
    assert "w2reg" in proc.stdout and "fair/race/di" in proc.stdout


def test_a_debiasing_method_on_data_without_groups_stops_with_one_line(tmp_path: Path) -> None:
    proc = trustbench("run", "method=w2reg", "data=mnist", f"paths.output_dir={tmp_path}", check=False)
    assert proc.returncode == 1
    assert "names none" in proc.stderr and "data.protected" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_debiasing_method_on_a_multiclass_task_stops_with_one_line(tmp_path: Path) -> None:
    proc = trustbench("run", "method=w2reg", "data=synthetic", f"paths.output_dir={tmp_path}", check=False)
    assert proc.returncode == 1
    assert "need a binary task" in proc.stderr and "Traceback" not in proc.stderr
