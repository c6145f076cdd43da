"""Deciding what a run may do with its directory: claim it, then start, resume, or refuse.

A run directory belongs to one process at a time: before writing anything the run claims it with an
exclusive lock (a second process on the same directory stops with one line), then removes the temporaries
of atomic writes that a killed run may have left. A run directory is never silently reused for a different
experiment: its first start saves the resolved config (run_config.yaml); a later start in the same
directory must ask for the same config, and then continues from `checkpoints/last.ckpt`. A damaged
checkpoint (truncated, zeroed: see trustbench/results/archives.py) is never resumed from: resume=auto moves
it aside to `last.ckpt.damaged-<time>` with a warning and starts over, resume=true stops and names it. A
finished run is never overwritten. Directory names carry :func:`run_stamp`, so two runs or sweeps started
in the same second still get directories of their own.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from trustbench.errors import RunDirError
from trustbench.results.archives import damage
from trustbench.results.locking import holder, try_lock
from trustbench.results.record import CONFIG_FILE, read_result, remove_stale_temporaries, write_atomically

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
LOCK_FILE = ".trustbench.lock"
RESUME_CHOICES = ("auto", True, False)

log = logging.getLogger("trustbench")
_claimed: dict[Path, int] = {}  # the run directory this process holds, with its lock's file descriptor


def run_stamp() -> str:
    """The time part of a run or sweep directory's name: local time to the microsecond and a random suffix,
    e.g. ``2026-12-06_11-45-00.123456_3fa9`` (the `run_stamp` resolver of the configs)."""
    return f"{datetime.now():%Y-%m-%d_%H-%M-%S.%f}_{secrets.token_hex(2)}"


def claim_run_dir(run_dir: Path) -> None:
    """Lock `run_dir` for this process, until it claims another run directory or ends.

    Raises RunDirError when another process holds it. A process runs one job at a time, so claiming the
    next job's directory releases the previous one.
    """
    key = run_dir.resolve()
    if key in _claimed:
        return
    descriptor = try_lock(key / LOCK_FILE)
    if descriptor is None:
        raise RunDirError(
            f"{run_dir} is in use by another trustbench process (pid {holder(key / LOCK_FILE)}); "
            "wait for it to end or pick another hydra.run.dir"
        )
    for previous in _claimed.values():
        os.close(previous)
    _claimed.clear()
    _claimed[key] = descriptor


def last_checkpoint(run_dir: Path) -> Path | None:
    path = run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    return path if path.is_file() else None


def _resumable_checkpoint(run_dir: Path, resume: object) -> Path | None:
    """`last.ckpt` if present and undamaged. A damaged one stops a resume=true run; with resume=auto it is
    moved aside (never deleted) and the run starts over."""
    checkpoint = last_checkpoint(run_dir)
    problem = damage(checkpoint) if checkpoint is not None else None
    if problem is None:
        return checkpoint
    if resume is True:
        raise RunDirError(
            f"{checkpoint} is damaged ({problem}); rerun with resume=auto to move it aside and start over"
        )
    aside = checkpoint.with_name(f"{checkpoint.name}.damaged-{run_stamp()}")
    os.replace(checkpoint, aside)
    log.warning("%s is damaged (%s); moved it to %s, starting the run over", checkpoint, problem, aside.name)
    return None


def _comparable(cfg: DictConfig) -> dict:
    """The config minus the keys that may differ between a run and its resumption."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("resume", None)
    return plain


def _first_difference(old: object, new: object, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')}: {old!r} -> {new!r}"


def prepare_run_dir(run_dir: Path, cfg: DictConfig) -> Path | None:
    """Check the run directory against `cfg.resume` and return the checkpoint to resume from, if any.

    Claims the directory first and saves the resolved config on a fresh start. Raises RunDirError when
    continuing would overwrite or mix results: another process in the directory, a finished run, a
    different config, resume=true with nothing (undamaged) to resume, resume=false over an existing run.
    """
    resume = cfg.get("resume", "auto")
    if resume not in RESUME_CHOICES:
        raise RunDirError(f"resume={resume!r} is not allowed; use resume=auto, resume=true or resume=false")
    claim_run_dir(run_dir)
    remove_stale_temporaries(run_dir)
    saved_config = run_dir / CONFIG_FILE
    if saved_config.exists():
        if resume is False:
            raise RunDirError(f"{run_dir} already holds a run; pick another hydra.run.dir or use resume=auto")
        record = read_result(run_dir)
        if record is not None and record.get("status") == "ok":
            raise RunDirError(
                f"{run_dir} holds a finished run (result.json status ok); pick another hydra.run.dir"
            )
        old = _comparable(OmegaConf.load(saved_config))
        new = _comparable(cfg)
        if old != new:
            raise RunDirError(
                f"{run_dir} holds a run with a different config ({_first_difference(old, new)}); "
                "pick another hydra.run.dir"
            )
    checkpoint = _resumable_checkpoint(run_dir, resume)
    if resume is True and checkpoint is None:
        raise RunDirError(f"resume=true but {run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT} does not exist")
    if not saved_config.exists():
        write_atomically(saved_config, OmegaConf.to_yaml(cfg, resolve=True))
    return checkpoint
