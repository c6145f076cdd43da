"""Shared test helpers: running `trustbench` as a user would, in its own process, into a temporary dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from forked_cli import run_forked

# One torch thread per test process: `make test` runs two processes on two cores, and with two threads
# each OpenMP's spinning threads fought for them (Adult's VAE fixture: 30 s of CPU instead of 3).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
FAST = ["data=synthetic", "backbone=mlp", "trainer.max_epochs=2", "data.batch_size=32"]
# W&B offline and quiet; one thread per run: the models are tiny and tests run two at a time on two cores
# (and runs compared for identical numbers must use the same thread count).
CLI_ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}


# The files whose tests take the most CPU (per-test CPU measured in the issue notes: 156, 117, 52, 44 and
# 33 s), collected first. `make test` hands each file whole to one of two workers in collection order, so
# a heavy file collected late (test_experiments.py sat in the middle) left one worker running alone at
# the end; largest first lets the small files fill in around them.
HEAVIEST_FILES = (
    "test_experiments.py",
    "test_counterfactual_runner.py",
    "test_audit.py",
    "test_explainers_latent.py",
    "test_runner.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(HEAVIEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trustbench.cli", *args]


def trustbench(
    *args: str, check: bool = True, env: dict[str, str] | None = None, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run the CLI in its own process and return the finished process: a child forked from this one
    (`forked_cli`: the same run without re-importing torch and Lightning), or with `fresh` a new
    interpreter, for what only a new interpreter shows (start-up, imports, interpreter-wide settings)."""
    full_env = {**CLI_ENV, **(env or {})}
    if fresh:
        proc = subprocess.run(cli_command(*args), capture_output=True, text=True, env=full_env, cwd=REPO)
    else:
        proc = run_forked(args, full_env, REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"trustbench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


@pytest.fixture
def chromium():
    """Headless Chromium driven by selenium (Debian's chromium + chromium-driver; the install script puts
    them there as root); the test is skipped, saying why, where either is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])"
    )
    binary, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver_path):
        pytest.skip(
            "no headless browser: install Debian's chromium and chromium-driver "
            "(scripts/install_system_data.sh does so as root)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    yield driver
    driver.quit()
