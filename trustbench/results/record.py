"""`result.json`: the one record a run leaves, written once, atomically, at the end.

Readers (tables, sweeps) only ever see a complete file: it is written to a temporary file in the same
directory, flushed to disk and renamed over the target, which POSIX makes atomic. A run that died before
writing it shows up as "incomplete", never as a silent gap.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
CONFIG_FILE = "run_config.yaml"
# The temporary file of `write_bytes_atomically`: ".<target name>.<mkstemp's 8 random characters>.tmp".
TEMPORARY_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that no reader ever sees a partial file."""
    write_bytes_atomically(path, text.encode())


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` via a temporary file in the same directory, flushed, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes files private (0600); results are meant to be shared
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Delete the temporaries `write_bytes_atomically` left under `root` when a kill interrupted it.

    Only for a directory no other process writes to (a run directory its run has locked). Returns them.
    """
    stale = [path for path in root.rglob(".*.tmp") if TEMPORARY_NAME.fullmatch(path.name) and path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def write_result(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write `record` as the run's result.json."""
    path = run_dir / RESULT_FILE
    write_atomically(path, json.dumps(record, indent=2, sort_keys=True, default=float) + "\n")
    return path


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """The run's record, or None when it has not finished (or never started)."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def find_run_dirs(paths: Iterable[Path]) -> Iterator[Path]:
    """Every run directory (one holding a trustbench run_config.yaml) under the given paths, sorted."""
    for root in paths:
        if not root.exists():
            raise FileNotFoundError(f"no such file or directory: {root}")
        candidates = [root] if (root / CONFIG_FILE).is_file() else []
        candidates += [p.parent for p in root.rglob(CONFIG_FILE)]
        yield from sorted(set(candidates))
