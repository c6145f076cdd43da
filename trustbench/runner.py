"""One run, one path: config → data → model → fit → evaluate → record.

`run_job` is what Hydra calls for each job. It owns the run's outcome: whatever happens inside, the run
directory ends with a result.json saying ok (with metrics) or failed (with the error), and a multirun
moves on to its next job.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from trustbench.errors import RunDirError, TrustbenchError
from trustbench.quiet import silence_third_party_noise
from trustbench.results.record import write_result

log = logging.getLogger("trustbench")


def is_rank_zero() -> bool:
    """True unless this process is a DDP worker that Lightning launched for rank > 0."""
    return int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0"))) == 0


def run_job(cfg: DictConfig) -> float | None:
    """Run one configured job and record its outcome; returns cfg.optimized_metric's value if asked."""
    silence_third_party_noise()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    started = time.time()
    try:
        metrics, extra = _run_body(cfg, run_dir)
    except Exception as err:  # noqa: BLE001 - every failure must be recorded, whatever its type
        if not is_rank_zero():
            raise
        if not isinstance(err, RunDirError):  # the directory holds another run's record: leave it be
            message = f"{type(err).__name__}: {err}"
            _record(run_dir, cfg, "failed", {}, started, error=message, trace=traceback.format_exc())
        if isinstance(err, TrustbenchError):
            log.error("run failed: %s", err)
        else:
            log.exception("run failed")
        _write_audit_report(cfg, run_dir)
        if hydra_cfg.mode == RunMode.RUN:
            sys.exit(1)
        return None
    finally:
        _finish_wandb()
    if metrics is None:  # a DDP worker of rank > 0: rank 0 records the run
        return None
    _record(run_dir, cfg, "ok", metrics, started, extra=extra)
    _write_audit_report(cfg, run_dir)
    wanted = cfg.get("optimized_metric")
    return metrics.get(wanted) if wanted else None


def _run_body(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """The run's metrics (None on DDP ranks other than 0) and what else its record keeps: an audit
    (`cfg.audit` set, as `trustbench audit` does) adds each member's outcome and the weights' fingerprint."""
    if cfg.get("audit"):
        from trustbench.audit.run import run_audit

        audited = run_audit(cfg, run_dir)
        return (None, {}) if audited is None else (audited.metrics, audited.record_fields())
    from trustbench.experiment import train_and_evaluate

    return train_and_evaluate(cfg, run_dir), {}


def _write_audit_report(cfg: DictConfig, run_dir: Path) -> None:
    """An audit's report.html beside its result.json; a report that cannot be written costs only itself."""
    if not cfg.get("audit") or not (run_dir / "result.json").is_file():
        return
    try:
        from trustbench.report.render import write_report

        log.info("report: %s", write_report([run_dir]))
    except Exception as err:  # noqa: BLE001 - the run's results are recorded already; say why, go on
        log.error("report.html could not be written: %s", err)


def _record(
    run_dir: Path,
    cfg: DictConfig,
    status: str,
    metrics: dict[str, float],
    started: float,
    error: str | None = None,
    trace: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    record: dict[str, Any] = {
        **(extra or {}),
        "status": status,
        "metrics": metrics,
        "error": error,
        "traceback": trace,
        "config": _plain_config(cfg),
        "run_dir": str(run_dir),
        "started": started,
        "duration_s": round(time.time() - started, 3),
    }
    write_result(run_dir, record)


def _plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The config with interpolations resolved when they can be (a broken config is recorded as written)."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - the record must be written even for a config that cannot resolve
        return OmegaConf.to_container(cfg, resolve=False)


def _finish_wandb() -> None:
    """Close the W&B run of this job, so every job of a multirun gets a run of its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
