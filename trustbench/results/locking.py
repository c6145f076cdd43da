"""Exclusive locks between processes, on a lock file: `fcntl.flock` (POSIX).

The kernel drops a flock when its holder closes the file or dies, however it dies, so a killed run never
leaves a stale lock behind (the lock file itself stays, empty of meaning until the next holder writes its
process id into it). Two uses: a run claims its directory (:func:`try_lock`, refused at once when taken),
and jobs that would train the same classifier take turns (:func:`locked`, waiting).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("trustbench")


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _sign(descriptor: int) -> None:
    """Write this process's id into the lock file, for the message another process shows."""
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)


def holder(path: Path) -> str:
    """The process id written into the lock file by its last holder, or "unknown"."""
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def try_lock(path: Path) -> int | None:
    """Take the exclusive lock on `path` without waiting: its descriptor (closing it releases the lock), or
    None when another process holds it."""
    descriptor = _open(path)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    _sign(descriptor)
    return descriptor


@contextmanager
def locked(path: Path, waiting_for: str) -> Iterator[None]:
    """Hold the exclusive lock on `path`, first waiting (with one log line) while another process holds it;
    `waiting_for` says what that process is doing."""
    descriptor = _open(path)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for process %s, which is %s (lock %s)", holder(path), waiting_for, path)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        _sign(descriptor)
        yield
    finally:
        os.close(descriptor)
