"""`trustbench run` checks every job's composed config before any job starts: values, combinations, keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trustbench.app import CONFIG_DIR
from trustbench.preflight import preflight


def refusal(*args: str) -> str:
    """The one line `trustbench run <args>` stops with before any work."""
    with pytest.raises(SystemExit) as exit_info:
        preflight(list(args), CONFIG_DIR)
    message = str(exit_info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed='abc' is not allowed: seed takes an integer"),
        ("seed=-1", "seed=-1 is not allowed: seed takes an integer >= 0"),
        ("data.batch_size=-3", "data.batch_size=-3 is not allowed: data.batch_size takes an integer >= 1"),
        ("data.batch_size=1.5", "data.batch_size=1.5 is not allowed: data.batch_size takes an integer"),
        (
            "trainer.max_epochs=0",
            "trainer.max_epochs=0 is not allowed: trainer.max_epochs takes an integer >= 1",
        ),
        (
            "method.optimizer.lr=0",
            "method.optimizer.lr=0 is not allowed: method.optimizer.lr takes a number > 0",
        ),
        (
            "backbone.net.dropout=2",
            "backbone.net.dropout=2 is not allowed: backbone.net.dropout takes a number >= 0 and < 1",
        ),
        (
            "backbone.net.dropout=-0.1",
            "backbone.net.dropout=-0.1 is not allowed: backbone.net.dropout takes a number >= 0 and < 1",
        ),
        ("resume=maybe", "resume='maybe' is not allowed: resume takes 'auto' or true/false"),
        ("+data.kind=text", "data.kind='text' is not allowed: data.kind takes 'image' or 'tabular' or null"),
    ],
)
def test_a_bad_value_is_one_line_naming_key_value_and_what_is_allowed(override: str, message: str) -> None:
    assert refusal(override) == f"trustbench: {message}"


def test_good_values_and_every_default_pass() -> None:
    preflight(["seed=3", "data.batch_size=1", "method.optimizer.lr=1e-3", "resume=false"], CONFIG_DIR)


def test_every_job_of_a_sweep_is_checked_before_the_first_starts() -> None:
    assert refusal("-m", "seed=0,1", "data.batch_size=64,-3") == (
        "trustbench: data.batch_size=-3 is not allowed: data.batch_size takes an integer >= 1"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seed=abc"], "seed='abc' is not allowed: seed takes an integer"),
        (  # a combination: the data's kind and the backbone's input kind, read without importing either
            ["data=adult", "backbone=lenet"],
            "backbone 'lenet' needs image inputs (C×H×W) but data 'adult' is tabular; use backbone=mlp or "
            "backbone=linear for tabular data",
        ),
        (
            ["method=mc_dropout", "backbone.net.dropout=0"],
            "method 'mc_dropout' samples dropout at test time, but backbone.net.dropout=0; allowed: 0 < "
            "backbone.net.dropout < 1 (the method sets 0.1)",
        ),
        (  # a regression setting, whose allowed values live beside the methods
            ["data=boston", "method=car", "method.module.score=mode"],
            "method.module.score='mode' is not allowed: method.module.score takes variance or entropy",
        ),
    ],
)
def test_a_bad_choice_stops_the_cli_without_importing_torch(overrides: list[str], message: str) -> None:
    code = (
        "import sys\n"
        "from trustbench import cli\n"
        "try:\n"
        f"    cli.main(['run', *{overrides!r}])\n"
        "except SystemExit as err:\n"
        "    print(err)\n"
        "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"trustbench: {message}", "False False"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epoch=3", "no config key trainer.max_epoch (did you mean trainer.max_epochs?)"),
        ("sed=1", "no config key sed (did you mean seed?)"),
        (
            "method.optimizer.lrr=0.1",
            "no config key method.optimizer.lrr (did you mean method.optimizer.lr?)",
        ),
    ],
)
def test_a_misspelled_key_gets_the_closest_real_one(override: str, message: str) -> None:
    key = override.partition("=")[0]
    assert refusal(override) == f"trustbench: {message}; to add a new key write +{key}=..."


def test_a_key_unlike_any_other_gets_no_guess() -> None:
    assert (
        refusal("trainer.zzzzzz=1")
        == "trustbench: no config key trainer.zzzzzz; to add a new key write +trainer.zzzzzz=..."
    )


@pytest.mark.parametrize(
    ("args", "method", "works_on", "data", "kind"),
    [
        (["method=deduce", "data=adult"], "deduce", "image", "adult", "tabular"),
        (["method=sparse_vce", "data=german"], "sparse_vce", "image", "german", "tabular"),
        (["-m", "method=erm,vcnet", "data=mnist"], "vcnet", "tabular", "mnist", "image"),
    ],
)
def test_an_explainer_on_the_wrong_kind_of_data_is_refused(
    args: list[str], method: str, works_on: str, data: str, kind: str
) -> None:
    assert refusal(*args) == (
        f"trustbench: method {method!r} works on {works_on} data, but data {data!r} is {kind}; "
        f"choose a method for {kind} data (trustbench list method)"
    )


def test_explainers_on_their_own_kind_of_data_pass() -> None:
    preflight(["-m", "method=deduce,sparse_vce", "data=mnist"], CONFIG_DIR)
    preflight(["method=vcnet", "data=adult"], CONFIG_DIR)


def test_a_declared_number_of_classes_is_checked_before_loading() -> None:
    assert refusal("data=mnist", "+data.suites=[fairness]", "+data.num_classes=10") == (
        "trustbench: fairness need a binary task (class 1 = favourable outcome), but mnist has 10 classes; "
        "use adult, compas, german, celeba or mnist_semi_random"
    )


def test_an_impossible_combination_stops_the_cli_before_any_data_is_read(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "trustbench"),
            "run",
            "method=deduce",
            "data=adult",
            f"paths.output_dir={tmp_path}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "trustbench: method 'deduce' works on image data, but data 'adult' is tabular; "
        "choose a method for tabular data (trustbench list method)"
    ]
    assert not (tmp_path / "run").exists()  # no run directory, so Hydra never started the job


def test_slurm_without_sbatch_is_one_line_pointing_at_the_local_launcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert refusal("-m", "launcher=slurm") == (
        "trustbench: launcher=slurm needs SLURM (no sbatch on this machine); to run the same jobs as local "
        "processes add hydra/launcher=submitit_local (and trainer=cpu without GPUs)"
    )


def test_slurm_settings_compose_with_the_local_submitit_launcher() -> None:
    preflight(["-m", "launcher=slurm", "hydra/launcher=submitit_local", "trainer=cpu"], CONFIG_DIR)


@pytest.mark.slow
def test_slurm_settings_run_a_job_with_the_local_submitit_launcher(tmp_path: Path) -> None:
    subprocess.run(
        [
            str(Path(sys.executable).parent / "trustbench"),
            "run",
            "-m",
            "launcher=slurm",
            "hydra/launcher=submitit_local",
            "trainer=cpu",
            "data=synthetic",
            "trainer.max_epochs=1",
            "hydra.launcher.cpus_per_task=1",
            f"paths.output_dir={tmp_path}",
        ],
        check=True,
        capture_output=True,
    )
    (result,) = tmp_path.glob("multiruns/*/0_synthetic_erm_s0/result.json")
    assert json.loads(result.read_text())["status"] == "ok"


def test_two_misspelled_keys_name_the_first_without_a_traceback() -> None:
    assert refusal("trainer.max_epoch=3", "sed=1") == (
        "trustbench: no config key trainer.max_epoch; to add a new key write +trainer.max_epoch=..."
    )
