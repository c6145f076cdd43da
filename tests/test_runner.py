"""`trustbench run` end to end on tiny data: records, failures, resumption, sweeps, DDP, W&B."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from conftest import FAST, result, trustbench

from trustbench.results.record import CONFIG_FILE


def test_a_run_leaves_config_metrics_checkpoint_and_result(run_dir: Path) -> None:
    trustbench("run", *FAST, f"hydra.run.dir={run_dir}")
    record = result(run_dir)
    assert record["status"] == "ok" and record["error"] is None
    assert {"cls/acc", "cls/nll", "cls/brier", "cal/ece", "val/acc", "val/nll"} <= set(record["metrics"])
    assert record["metrics"]["cls/acc"] > 0.9  # four well-separated blobs
    assert (run_dir / CONFIG_FILE).is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    logged = pd.read_csv(run_dir / "csv" / "metrics.csv")
    assert logged["cls/acc"].dropna().tolist() == [record["metrics"]["cls/acc"]]
    assert logged["train/loss_epoch"].dropna().size == 2


def test_incompatible_backbone_stops_before_any_work(run_dir: Path) -> None:
    proc = trustbench("run", "data=synthetic", "backbone=cnn", f"hydra.run.dir={run_dir}", check=False)
    assert proc.returncode == 1
    assert "backbone 'cnn' needs image inputs" in proc.stderr
    assert not run_dir.exists()  # refused by the CLI's preflight: Hydra never started the job


def test_a_method_needing_features_refuses_a_backbone_without(run_dir: Path) -> None:
    proc = trustbench(
        "run",
        *FAST,
        "backbone=linear",
        "method.needs_features=true",
        f"hydra.run.dir={run_dir}",
        check=False,
    )
    assert proc.returncode == 1
    assert "needs penultimate features but backbone 'linear' has no feature layer" in proc.stderr


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One multirun of three jobs with W&B offline: a diverging learning rate, then the same job twice."""
    sweep_dir = tmp_path_factory.mktemp("sweep")
    proc = trustbench(
        "run",
        "-m",
        *FAST,
        "logger=wandb",
        "method.optimizer.lr=1e30,0.05,0.05",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=${hydra.job.num}",
        check=False,
    )
    (sweep_dir / "exit.txt").write_text(f"{proc.returncode}\n{proc.stderr}")
    return [sweep_dir / str(i) for i in range(3)]


def test_a_multirun_with_a_failed_job_exits_1_and_names_it(sweep: list[Path]) -> None:
    code, stderr = (sweep[0].parent / "exit.txt").read_text().split("\n", 1)
    assert code == "1"
    assert "trustbench: 1 of 3 jobs did not finish ok: 0" in stderr


def test_non_finite_loss_fails_the_job_and_says_why(sweep: list[Path]) -> None:
    record = result(sweep[0])
    assert record["status"] == "failed"
    assert record["error"].startswith("NonFiniteLossError: training loss became")


def test_multirun_goes_on_after_a_failed_job(sweep: list[Path]) -> None:
    assert [result(d)["status"] for d in sweep] == ["failed", "ok", "ok"]


def test_same_config_and_seed_give_identical_metrics(sweep: list[Path]) -> None:
    assert result(sweep[1])["metrics"] == result(sweep[2])["metrics"]


def test_each_job_of_a_multirun_gets_its_own_wandb_run(sweep: list[Path]) -> None:
    for job_dir in sweep[1:]:
        offline_runs = list((job_dir / "wandb").glob("offline-run-*"))
        assert len(offline_runs) == 1, job_dir
        assert list(offline_runs[0].glob("*.wandb"))


def test_a_wandb_run_uses_the_id_stored_in_its_run_dir_and_gets_the_config(sweep: list[Path]) -> None:
    run_id = (sweep[1] / "wandb_run_id.txt").read_text().strip()
    (offline_run,) = (sweep[1] / "wandb").glob(f"offline-run-*-{run_id}")
    # An offline run of wandb 0.31 keeps its config only in the binary run log (files/config.yaml is
    # written at sync): the resolved config's JSON stands there as wandb serialised it.
    log = (offline_run / f"run-{run_id}.wandb").read_bytes()
    assert b'"optimizer":{"_target_":"torch.optim.SGD","_partial_":true,"lr":0.05' in log
    assert b'"name":"synthetic"' in log


def test_table_reads_a_sweep_and_counts_the_failure(sweep: list[Path]) -> None:
    out = trustbench("table", str(sweep[0].parent), "--by", "method,data", "--metrics", "cls/acc").stdout
    row = next(line for line in out.splitlines() if "| erm" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["erm", "synthetic", "ours", "2", "1"]
    assert cells[5].endswith("± 0.0000")


def test_parallel_jobs_lose_no_result(tmp_path: Path) -> None:
    trustbench(
        "run",
        "-m",
        *FAST,
        "launcher=local_parallel",
        "seed=0,1,2,3",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweep.subdir=${seed}",
    )
    assert [result(tmp_path / str(s))["status"] for s in range(4)] == ["ok"] * 4


def test_a_finished_run_dir_is_never_overwritten(run_dir: Path) -> None:
    trustbench("run", *FAST, f"hydra.run.dir={run_dir}")
    before = (run_dir / "result.json").read_text()
    proc = trustbench("run", *FAST, "seed=5", f"hydra.run.dir={run_dir}", check=False)
    assert proc.returncode == 1
    assert "holds a finished run" in proc.stderr
    assert (run_dir / "result.json").read_text() == before


def test_ddp_on_two_cpu_processes_gives_one_result(run_dir: Path) -> None:
    trustbench(
        "run",
        *FAST,
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.strategy=ddp_spawn",
        "trainer.devices=2",
        f"hydra.run.dir={run_dir}",
    )
    assert result(run_dir)["status"] == "ok"
    assert len(list(run_dir.rglob("result.json"))) == 1
    logged = pd.read_csv(run_dir / "csv" / "metrics.csv")
    assert logged["cls/acc"].dropna().size == 1


def write_idx(path: Path, dims: tuple[int, ...], payload: bytes) -> None:
    """An idx file as LeCun's format defines it: magic (0, 0, uint8 type, ndim), big-endian dims, data."""
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(gzip.compress(header + payload))


def test_a_truncated_dataset_file_is_named_and_no_success_is_recorded(tmp_path: Path, run_dir: Path) -> None:
    mnist = tmp_path / "data" / "mnist"
    mnist.mkdir(parents=True)
    write_idx(mnist / "train-images-idx3-ubyte.gz", (20, 28, 28), bytes(28 * 28 * 7))  # 7 of 20 images
    write_idx(mnist / "train-labels-idx1-ubyte.gz", (20,), bytes(20))
    write_idx(mnist / "t10k-images-idx3-ubyte.gz", (4, 28, 28), bytes(28 * 28 * 4))
    write_idx(mnist / "t10k-labels-idx1-ubyte.gz", (4,), bytes(4))
    proc = trustbench(
        "run",
        "data=mnist",
        "data.ood=[]",
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={run_dir}",
        check=False,
    )
    assert proc.returncode == 1
    assert "train-images-idx3-ubyte.gz" in proc.stderr and "Traceback" not in proc.stderr
    record = result(run_dir)
    assert record["status"] == "failed" and "train-images-idx3-ubyte.gz" in record["error"]
    assert not (run_dir / "checkpoints").exists()


def test_a_dataset_with_no_source_and_no_network_is_one_actionable_line(
    tmp_path: Path, run_dir: Path
) -> None:
    no_network = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    proc = trustbench(
        "run",
        "data=cifar10",
        "backbone=resnet18",
        f"paths.data_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        check=False,
        env=no_network,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert f"put cifar-10-python.tar.gz in {tmp_path / 'cifar10'}" in errors[0]
    assert "trustbench data fetch cifar10" in errors[0]
    assert result(run_dir)["status"] == "failed"
