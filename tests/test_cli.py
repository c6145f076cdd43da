"""The command line: instant help, listing configs, one-line errors for unknown choices."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trustbench import cli


def test_help_and_list_import_no_heavy_library() -> None:
    code = (
        "import sys, contextlib, io\n"
        "import trustbench.cli as c\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    c.main(['list'])\n"
        "print(sorted(m for m in ('torch', 'pytorch_lightning', 'hydra', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_list_names_every_config_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["list", "method"])
    out = capsys.readouterr().out
    assert "erm" in out and "cross-entropy" in out


def test_every_config_has_a_description() -> None:
    for group in cli.LISTED_GROUPS:
        for name in cli.config_choices(group):
            assert cli.describe(group, name), f"configs/{group}/{name}.yaml lacks a first-line description"


@pytest.mark.parametrize(
    ("override", "group"),
    [("method=nope", "method"), ("data=mnist,imagenet", "data"), ("backbone=vgg", "backbone")],
)
def test_unknown_choice_is_one_line_listing_valid_ones(override: str, group: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.check_overrides([override])
    message = str(exit_info.value)
    assert "\n" not in message
    assert f"unknown {group}" in message
    for valid in cli.config_choices(group):
        assert valid in message


def test_overrides_that_pick_no_config_pass() -> None:
    cli.check_overrides(["seed=3", "trainer.max_epochs=1", "+tags=[a]", "experiment=null", "-m"])


def test_a_misspelled_choice_gets_the_closest_config() -> None:
    expected = r"^trustbench: unknown method 'dicee' \(did you mean dice\?\); choose one of: "
    with pytest.raises(SystemExit, match=expected):
        cli.check_overrides(["method=dicee"])
