"""Concurrent work, with real `trustbench run` processes: sweeps started together get directories of their
own, and a run directory serves one process at a time (issue 11 item 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CLI_ENV, FAST, REPO, cli_command, result, trustbench


def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(*args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


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
