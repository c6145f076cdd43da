"""What a run may do with a directory that already holds one: continue it, or stop in one line without
touching it; and the temporaries that a kill in the middle of an atomic write leaves behind, which
reopening the run directory removes, and nothing else (issue 11 item 4)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from trustbench.errors import RunDirError
from trustbench.results.rundir import prepare_run_dir

CFG = OmegaConf.create({"seed": 0, "resume": "auto"})
# Writes `target` atomically and is SIGKILLed at the rename, when the temporary holds every byte.
KILLED_MID_WRITE = """
import os, signal, sys
from pathlib import Path
from trustbench.results.record import write_bytes_atomically
os.replace = lambda *paths: os.kill(os.getpid(), signal.SIGKILL)
write_bytes_atomically(Path(sys.argv[1]), b"written")
"""


def kill_mid_write(target: Path) -> None:
    process = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], capture_output=True)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()


def test_temporaries_left_by_kills_mid_write_are_removed_when_the_run_dir_is_reopened(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    prepare_run_dir(run_dir, CFG)
    for target in ("result.json", "checkpoints/last.ckpt", "plots/ood_roc.png"):
        kill_mid_write(run_dir / target)
    left = sorted(path.relative_to(run_dir) for path in run_dir.rglob("*.tmp"))
    assert [path.parent.as_posix() for path in left] == [".", "checkpoints", "plots"]
    assert not (run_dir / "result.json").exists()
    users = [run_dir / "notes.tmp", run_dir / ".notes.tmp", run_dir / "plots" / ".draft.v2.tmp"]
    for path in users:
        path.write_text("the user's")

    prepare_run_dir(run_dir, CFG)

    assert sorted(run_dir.rglob("*.tmp")) == sorted(users)


def started_run(run_dir: Path) -> Path:
    """A run dir as a run killed in its first epoch leaves it: the saved config, no checkpoint, no result."""
    prepare_run_dir(run_dir, CFG)
    return run_dir / "run_config.yaml"


def test_the_same_config_continues_in_its_directory(tmp_path: Path) -> None:
    started_run(tmp_path / "run")
    assert prepare_run_dir(tmp_path / "run", CFG) is None  # nothing to resume from yet: it starts over


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"seed": 1}, "holds a run with a different config (seed: 0 -> 1)"),
        ({"resume": False}, "already holds a run"),
        ({"resume": True}, "resume=true but"),
    ],
)
def test_a_used_directory_refuses_in_one_line_and_stays_as_it_was(
    tmp_path: Path, change: dict, refusal: str
) -> None:
    saved = started_run(tmp_path / "run")
    before = saved.read_text()
    with pytest.raises(RunDirError, match=re.escape(refusal)) as stopped:
        prepare_run_dir(tmp_path / "run", OmegaConf.merge(CFG, change))
    assert "\n" not in str(stopped.value)
    assert saved.read_text() == before
