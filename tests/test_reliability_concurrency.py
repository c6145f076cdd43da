"""Concurrent work, with real `trustbench run` processes: sweeps started together get directories of their
own, a run directory serves one process at a time (issue 11 item 6), and a parallel sweep trains each
classifier once, to the numbers of a sequential sweep (item 7)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CLI_ENV, FAST, REPO, cli_command, result, trustbench
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from trustbench.app import CONFIG_DIR
from trustbench.errors import ConfigError, RunDirError
from trustbench.results.locking import locked
from trustbench.results.model_store import stored_model_path
from trustbench.results.rundir import prepare_run_dir
from trustbench.schema import validate


def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(*args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# Claims the run dir argv[1] as a run does, says so on stdout, and keeps it until stdin closes.
CLAIM_RUN_DIR = """
import sys
from pathlib import Path
from trustbench.results.rundir import claim_run_dir
claim_run_dir(Path(sys.argv[1]))
print("claimed", flush=True)
sys.stdin.read()
"""


def test_a_run_dir_claimed_by_another_process_is_refused_in_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIM_RUN_DIR, str(run_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "claimed\n"
        with pytest.raises(RunDirError) as refused:
            prepare_run_dir(run_dir, OmegaConf.create({"seed": 0, "resume": "auto"}))
    finally:
        holder.communicate("")
    assert str(refused.value) == (
        f"{run_dir} is in use by another trustbench process (pid {holder.pid}); "
        "wait for it to end or pick another hydra.run.dir"
    )
    assert not (run_dir / "run_config.yaml").exists()
    prepare_run_dir(run_dir, OmegaConf.create({"seed": 0, "resume": "auto"}))  # free once the holder ended


@pytest.mark.slow
def test_a_second_process_on_a_run_dir_in_use_stops_with_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    long_run = [*FAST, "trainer.max_epochs=1000", f"hydra.run.dir={run_dir}"]
    first = start("run", *long_run, env=CLI_ENV)
    try:
        while not (run_dir / "run_config.yaml").exists():  # written once the run holds its directory
            assert first.poll() is None, first.communicate()[1]
            time.sleep(0.05)
        second = trustbench("run", *long_run, check=False)
        assert first.poll() is None, "the first run ended before the second one tried its directory"
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    (refusal,) = [line for line in second.stderr.splitlines() if "in use" in line]
    assert f"{run_dir} is in use by another trustbench process (pid {first.pid})" in refusal
    assert not (run_dir / "result.json").exists()


@pytest.mark.slow
def test_two_sweeps_started_in_the_same_second_get_directories_of_their_own(tmp_path: Path) -> None:
    env = {**CLI_ENV, "TRUSTBENCH_OUTPUTS": str(tmp_path)}
    sweeps = [start("run", "-m", *FAST, "seed=0,1", env=env) for _ in range(2)]
    for sweep in sweeps:
        _, stderr = sweep.communicate()
        assert sweep.returncode == 0, stderr[-3000:]
    sweep_dirs = sorted((tmp_path / "multiruns").iterdir())
    assert len(sweep_dirs) == 2
    for sweep_dir in sweep_dirs:
        jobs = sorted(path.name for path in sweep_dir.iterdir() if path.is_dir())
        assert jobs == ["0_synthetic_erm_s0", "1_synthetic_erm_s1"]
        for job in jobs:
            record = result(sweep_dir / job)
            assert record["status"] == "ok" and record["run_dir"] == str(sweep_dir / job)


def compose_config(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=["method=msp", *overrides])


def test_the_thread_count_is_part_of_the_training_recipe() -> None:
    assert compose_config().threads == 1
    assert stored_model_path(compose_config("threads=2")) != stored_model_path(compose_config())


@pytest.mark.parametrize(
    ("threads", "refusal"), [("0", "threads=0 is not allowed"), ("two", "threads='two'")]
)
def test_a_thread_count_that_is_not_a_positive_integer_is_refused(threads: str, refusal: str) -> None:
    with pytest.raises(ConfigError, match=refusal):
        validate(compose_config(f"threads={threads}"))


# Holds the lock on argv[1] for a second, after saying so on stdout.
HOLD_LOCK = """
import sys, time
from pathlib import Path
from trustbench.results.locking import locked
with locked(Path(sys.argv[1]), waiting_for="testing"):
    print("held", flush=True)
    time.sleep(1)
"""


def test_a_recipe_lock_makes_the_second_process_wait_and_says_for_whom(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock = tmp_path / ".recipe.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with caplog.at_level(logging.INFO, logger="trustbench"), locked(lock, waiting_for="training it"):
        pass
    holder.wait()
    (waited,) = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert f"waiting for process {holder.pid}, which is training it" in waited


# Two post-hoc detectors on one LeNet: the second job must wait for the first one's classifier. The
# environment keeps torch's own thread count (2 on two cores), which the parallel launcher's workers do not
# get (joblib gives each of its 2 workers 1 thread), as a user's shell would.
POSTHOC_SWEEP = [
    "-m",
    "method=msp,energy",
    "data=synthetic_image",
    "backbone=lenet",
    "trainer.max_epochs=20",
    "data.batch_size=8",
]
USER_ENV = {key: value for key, value in CLI_ENV.items() if key != "OMP_NUM_THREADS"}


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same sweep run by the sequential and by the local_parallel launcher, into two outputs dirs."""
    outputs = {name: tmp_path_factory.mktemp(name) for name in ("sequential", "parallel")}
    for name, launcher in (("sequential", []), ("parallel", ["launcher=local_parallel"])):
        sweep = start(
            "run", *POSTHOC_SWEEP, *launcher, env={**USER_ENV, "TRUSTBENCH_OUTPUTS": str(outputs[name])}
        )
        _, stderr = sweep.communicate()
        assert sweep.returncode == 0, stderr[-3000:]
    return outputs


def jobs_of(outputs: Path) -> dict[str, Path]:
    (sweep_dir,) = (outputs / "multiruns").iterdir()
    return {path.name: path for path in sweep_dir.iterdir() if path.is_dir()}


@pytest.mark.slow
def test_a_parallel_sweep_trains_each_classifier_once(sweeps: dict[str, Path]) -> None:
    assert len(list((sweeps["parallel"] / ".models").glob("*.pt"))) == 1
    trained = [name for name, job in jobs_of(sweeps["parallel"]).items() if (job / "checkpoints").exists()]
    assert len(trained) == 1, f"the classifier was trained by {trained}"


@pytest.mark.slow
def test_a_parallel_sweep_gives_the_weights_and_metrics_of_a_sequential_one(sweeps: dict[str, Path]) -> None:
    (sequential_model,) = (sweeps["sequential"] / ".models").glob("*.pt")
    (parallel_model,) = (sweeps["parallel"] / ".models").glob("*.pt")
    assert sequential_model.name == parallel_model.name  # one recipe, threads included
    sequential, parallel = (
        torch.load(path, weights_only=True) for path in (sequential_model, parallel_model)
    )
    assert all(torch.equal(sequential[key], parallel[key]) for key in sequential)
    for name, job in jobs_of(sweeps["sequential"]).items():
        assert result(jobs_of(sweeps["parallel"])[name])["metrics"] == result(job)["metrics"]
