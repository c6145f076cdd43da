"""`trustbench run` checks every job's composed config before any job starts: values, combinations, keys."""

from __future__ import annotations

import subprocess
import sys

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


def test_a_bad_value_stops_the_cli_in_a_second_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from trustbench import cli\n"
        "try:\n"
        "    cli.main(['run', 'seed=abc'])\n"
        "except SystemExit as err:\n"
        "    print(err)\n"
        "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["trustbench: seed='abc' is not allowed: seed takes an integer", "False False"]
