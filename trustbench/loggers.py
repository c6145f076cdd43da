"""The run's loggers: written inside the run directory, continued (not restarted) by a resumed run.

Configs name a logger class and its arguments but no directory: `in_run_dir` supplies the run directory
when the logger is built, so no path inside the run's saved config depends on where the run directory
lies, and a run directory copied elsewhere resumes like the original.

Lightning logs an epoch's aggregated training metrics (``train/loss_epoch``) only after the epoch-end
callbacks have run, so a run killed right after its epoch-end checkpoint would never log that row.
:class:`KeepEpochRow` keeps the row in the checkpoint (and flushes the loggers first, so the rows on disk
and the checkpoint cover the same epochs); :func:`continue_csv_logs` puts it back on resume.

metrics.csv is written by :class:`AtomicCSVLogger`, which only ever replaces the file whole: Lightning's
writer rewrites it in place whenever a new column appears (truncate, then write every row), so a run killed
in that moment lost the rows already logged; a resumed run then lacked them (seen once in
tests/test_resume.py: epoch 0's validation row was gone).
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class
from lightning_fabric.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from trustbench.results.record import write_atomically

WANDB_ID_FILE = "wandb_run_id.txt"


def in_run_dir(logger: str, **arguments: Any) -> Logger:
    """The Lightning logger class `logger` built with the running job's directory as its `save_dir`.

    A W&B logger gets the run id stored in the run directory (created on the first start) and
    ``resume="allow"``, so a resumed run continues its W&B run instead of opening a second one.
    """
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    logger_class = get_class(logger)
    if issubclass(logger_class, WandbLogger):
        arguments |= {"id": _wandb_run_id(run_dir), "resume": "allow"}
    return logger_class(save_dir=str(run_dir), **arguments)


class AtomicMetricsWriter(ExperimentWriter):
    """Lightning's CSV experiment writer whose every save replaces metrics.csv whole (temporary file, fsync,
    rename), from the rows it holds in memory: a kill leaves either the previous file or the new one.

    It does not delete an existing metrics.csv when it opens (Lightning's writer does): the file stays
    until the first save replaces it, so a resumed run (:func:`continue_csv_logs`) never has a moment
    without its earlier rows on disk."""

    def __init__(self, log_dir: str) -> None:
        self._saved: list[dict[str, Any]] = []
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        """Keep what is there: the first save replaces metrics.csv atomically."""

    def save(self) -> None:
        if self.metrics:
            self._record_new_keys()
            self._saved.extend(self.metrics)
            self.metrics = []
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(self._saved)
            write_atomically(Path(self.metrics_file_path), text.getvalue())
        super().save()  # with no metrics left, Lightning's own writing of metrics.csv does nothing


class AtomicCSVLogger(CSVLogger):
    """Lightning's CSVLogger writing through :class:`AtomicMetricsWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AtomicMetricsWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AtomicMetricsWriter(log_dir=self.log_dir)
        return self._experiment


def _wandb_run_id(run_dir: Path) -> str:
    path = run_dir / WANDB_ID_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(uuid.uuid4().hex[:12] + "\n")
    return path.read_text().strip()


class KeepEpochRow(pl.Callback):
    """Puts the ending epoch's not-yet-logged row into every checkpoint, and flushes the loggers first."""

    def __init__(self) -> None:
        self.trainer: pl.Trainer | None = None

    def state_dict(self) -> dict[str, Any]:
        # Called while the epoch-end checkpoint is saved, after the module logged its epoch metrics.
        return {"epoch_row": pending_epoch_row(self.trainer)} if self.trainer is not None else {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.trainer = trainer

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, state: Any) -> None:
        for logger in trainer.loggers:
            logger.save()


def pending_epoch_row(trainer: pl.Trainer) -> dict[str, float]:
    """The row Lightning is about to log for the ending epoch: its epoch-aggregated metrics, with the
    `epoch` and `step` Lightning's logger connector gives them (private state of Lightning 2.x, pinned by
    tests/test_resume.py). Empty outside an epoch end."""
    if trainer._logger_connector._first_loop_iter is not None:  # mid-epoch: no epoch row is pending
        return {}
    metrics = {key: float(value) for key, value in trainer._logger_connector.metrics["log"].items()}
    if not metrics:
        return {}
    step = trainer.fit_loop.epoch_loop._batches_that_stepped - 1
    return {**metrics, "epoch": trainer.current_epoch, "step": step}


def log_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """Give every logger the resolved run config as hyperparameters (W&B config, hparams.yaml)."""
    hyperparameters = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(hyperparameters)


def log_final(loggers: list[Logger], metrics: dict[str, float], step: int) -> None:
    """Log a run's evaluation metrics to every logger, after training, and write them out.

    With DDP spawn the workers trained and wrote metrics.csv, so this process's CSV writer has never
    seen the file's columns; it adopts them first (Lightning sorts its columns, so the union stays in the
    file's order), else rewriting the header would drop the training rows' fields.
    """
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            writer = logger.experiment
            path = Path(writer.metrics_file_path)
            if path.is_file():
                with open(path, newline="") as handle:
                    header = next(csv.reader(handle), [])
                writer.metrics_keys = sorted(set(writer.metrics_keys) | set(header))
        logger.log_metrics(metrics, step=step)
        logger.save()


def continue_csv_logs(loggers: list[Logger], checkpoint: Path) -> None:
    """Keep the rows a resumed run logged up to its checkpoint's epoch in each CSV logger's metrics.csv.

    The writer replaces metrics.csv with the rows it holds at its first save (Lightning's own writer
    deletes the file when it opens); this reads the rows first and hands back those of the epochs the
    checkpoint covers. Rows of later epochs (trained
    after the checkpoint, before the run stopped) are dropped, as the resumed run trains those again.
    """
    state = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)
    last_epoch = state["epoch"]
    epoch_row = _saved_epoch_row(state)
    for logger in loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        rows = _read_rows(path) if path.is_file() else []
        kept = [row for row in rows if row.get("epoch", last_epoch + 1) <= last_epoch]
        if epoch_row and epoch_row not in kept:  # logged after the checkpoint, or never (killed in between)
            kept.append(epoch_row)
        writer = logger.experiment  # opening the writer removes the old file
        writer.metrics.extend(kept)
        writer.save()


def _saved_epoch_row(state: dict[str, Any]) -> dict[str, float | int]:
    """The epoch-end row that EpochEndCheckpoint kept in the checkpoint, typed as CSV rows are read."""
    for key, callback_state in state.get("callbacks", {}).items():
        if KeepEpochRow.__name__ in key and callback_state.get("epoch_row"):
            return {name: _number(name, str(value)) for name, value in callback_state["epoch_row"].items()}
    return {}


def _read_rows(path: Path) -> list[dict[str, float | int]]:
    with open(path, newline="") as handle:
        rows = csv.DictReader(handle)
        return [{key: _number(key, value) for key, value in row.items() if value} for row in rows]


def _number(key: str, value: str) -> float | int:
    return int(value) if key in ("step", "epoch") else float(value)
