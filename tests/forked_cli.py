"""Run `trustbench` in a child forked from the test process instead of a fresh interpreter.

A fresh `python -m trustbench.cli` spends 5-7 s of CPU importing torch, Lightning and Hydra before it does
anything, and the default test run starts the CLI over a hundred times: that import alone was about half
of the suite's time on two cores. A forked child already has those modules loaded, and otherwise runs
exactly what the user's process runs (`trustbench.cli.main` with the same argv, environment and working
directory, its own stdout/stderr, its own exit code), and any state it changes dies with it.

What a fork cannot show is the cost or the laziness of imports: tests about start-up time or about which
modules a command imports start a real interpreter (`fresh=True` in conftest's `trustbench`, or their own
`subprocess` calls), and so do tests that kill a run or run two at once.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path


def _exit_code(exc: SystemExit) -> int:
    """The status a Python interpreter exits with for `exc` (a message goes to stderr, status 1)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _run_in_child(args: Sequence[str], env: Mapping[str, str], cwd: Path, out: int, err: int) -> int:
    """The child's whole life: point fds 1 and 2 at the capture files, take the environment, run the CLI."""
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    root = logging.getLogger()
    for handler in list(root.handlers):  # pytest's capture handlers belong to the parent
        root.removeHandler(handler)
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    sys.argv = ["trustbench", *args]
    from trustbench.cli import main

    try:
        main(list(args))
        return 0
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:  # noqa: BLE001 - an uncaught error ends the process with a traceback, as Python does
        traceback.print_exc()
        return 1


def run_forked(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`trustbench *args` in a forked child; returns what `subprocess.run(..., capture_output=True,
    text=True)` would."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _run_in_child(args, env, cwd, out.fileno(), err.fileno())
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError):
                        pass
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(
            ["trustbench", *args],
            os.waitstatus_to_exitcode(status),
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )
