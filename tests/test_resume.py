"""Kill and resume: a run SIGKILLed after its first epoch continues from its checkpoint to the numbers and
training curves of a run that was never interrupted, also from a copy of its run directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import CLI_ENV, REPO, cli_command, result, trustbench
from omegaconf import OmegaConf

from trustbench.results.record import CONFIG_FILE

# Dropout draws from the global RNG, which the resumed run must restore; small batches give the kill
# time to land between the first epoch's checkpoint and the end of training.
RUN = [
    "data=synthetic",
    "backbone=mlp",
    "backbone.net.dropout=0.3",
    "trainer.max_epochs=6",
    "data.batch_size=8",
]


def checkpoint_of(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.ckpt"


def kill_after_first_checkpoint(run_dir: Path) -> None:
    """Start a real `trustbench run` and SIGKILL it as soon as its first epoch's checkpoint appears."""
    proc = subprocess.Popen(
        cli_command("run", *RUN, f"hydra.run.dir={run_dir}"),
        cwd=REPO,
        env=CLI_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not checkpoint_of(run_dir).exists() and proc.poll() is None:
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted run; a run killed after epoch 0 and resumed; a copy of the killed run resumed."""
    root = tmp_path_factory.mktemp("resume")
    dirs = {name: root / name for name in ("whole", "killed", "copy")}
    trustbench("run", *RUN, f"hydra.run.dir={dirs['whole']}")
    kill_after_first_checkpoint(dirs["killed"])
    (root / "killed_at_epoch").write_text(
        str(torch.load(checkpoint_of(dirs["killed"]), weights_only=True)["epoch"])
    )
    assert not (dirs["killed"] / "result.json").exists(), "killed too late: the run had finished"
    shutil.copytree(dirs["killed"], dirs["copy"])
    trustbench("run", *RUN, f"hydra.run.dir={dirs['killed']}")
    trustbench("run", *RUN, f"hydra.run.dir={dirs['copy']}")
    return dirs


def test_the_kill_came_after_the_first_epoch_checkpoint(runs: dict[str, Path]) -> None:
    assert (runs["whole"].parent / "killed_at_epoch").read_text() == "0"


def test_a_killed_run_resumes_to_the_same_metrics_bit_for_bit(runs: dict[str, Path]) -> None:
    assert result(runs["killed"])["status"] == "ok"
    assert result(runs["killed"])["metrics"] == result(runs["whole"])["metrics"]


def test_a_resumed_run_logs_every_epoch_once(runs: dict[str, Path]) -> None:
    whole = pd.read_csv(runs["whole"] / "csv" / "metrics.csv")
    resumed = pd.read_csv(runs["killed"] / "csv" / "metrics.csv")
    assert resumed["train/loss_epoch"].dropna().size == 6
    assert resumed["epoch"].dropna().tolist() == [e for e in range(6) for _ in range(2)]
    pd.testing.assert_frame_equal(resumed, whole)


def test_a_copied_run_dir_resumes_to_the_same_metrics(runs: dict[str, Path]) -> None:
    assert result(runs["copy"])["metrics"] == result(runs["whole"])["metrics"]
    assert (runs["copy"] / "csv" / "metrics.csv").read_text() == (
        runs["whole"] / "csv" / "metrics.csv"
    ).read_text()


def test_the_saved_config_holds_no_path_of_its_run_dir(runs: dict[str, Path]) -> None:
    assert str(runs["whole"]) not in (runs["whole"] / CONFIG_FILE).read_text()


def test_the_csv_hparams_are_the_resolved_config(runs: dict[str, Path]) -> None:
    logged = OmegaConf.to_container(OmegaConf.load(runs["whole"] / "csv" / "hparams.yaml"))
    assert logged == OmegaConf.to_container(OmegaConf.load(runs["whole"] / CONFIG_FILE))
    assert logged["backbone"]["net"]["dropout"] == 0.3 and logged["trainer"]["max_epochs"] == 6
