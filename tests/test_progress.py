"""Progress bars of long steps: shown on stderr when asked for or on a terminal, silent otherwise, and
never changing what the loop yields."""

from __future__ import annotations

import pytest

from trustbench.progress import bars_enabled, progress


def test_the_loop_yields_every_item_whether_bars_show_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in ("0", "1"):
        monkeypatch.setenv("TRUSTBENCH_PROGRESS", setting)
        assert list(progress(range(5), "counting")) == [0, 1, 2, 3, 4]


def test_bars_are_silent_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.delenv("TRUSTBENCH_PROGRESS", raising=False)
    assert not bars_enabled()  # pytest's captured stderr is no terminal, as in CI and log files
    list(progress(range(3), "quiet step"))
    assert capfd.readouterr().err == ""


def test_a_forced_bar_names_its_step_on_stderr(monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.setenv("TRUSTBENCH_PROGRESS", "1")
    list(progress(range(3), "training VAE"))
    captured = capfd.readouterr()
    assert "training VAE" in captured.err and captured.out == ""
