"""Checking files written by `torch.save` before trusting them: checkpoints, model-store and cache entries.

`torch.save` writes a zip archive that records the CRC-32 of every member, but `torch.load` never checks
them: a truncated file fails with an error that names no file, and a file with zeroed bytes loads silently
with other numbers. Python's zipfile does check them, which is how the decoded-image cache
(`trustbench/data/catalog.py`, whose `.npz` is a zip read by `np.load`) already notices a damaged file; so
no digest of our own is stored: the archive's own CRCs are verified here, reading every byte once.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

log = logging.getLogger("trustbench")


def damage(path: Path) -> str | None:
    """What is wrong with the torch.save archive at `path`, or None when every member's CRC-32 matches."""
    try:
        with zipfile.ZipFile(path) as archive:
            failing = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        return f"not a complete torch.save archive: {error}"
    return f"its member {failing} fails its CRC-32 check" if failing else None


def intact(path: Path) -> bool:
    """Whether the cache or store entry `path` exists undamaged. A damaged entry counts as missing, so the
    caller rebuilds it (replacing the file); one warning line names it."""
    if not path.is_file():
        return False
    problem = damage(path)
    if problem is not None:
        log.warning("%s is damaged (%s); rebuilding it", path, problem)
    return problem is None
