"""A resumable checkpoint after every training epoch: `checkpoints/last.ckpt`, replaced atomically.

Lightning's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes "last" only when it also saves a top-k
checkpoint, so with ``save_top_k=0`` a run had no checkpoint until training ended. This callback saves at
every epoch end instead. Lightning's own writer stages the file in the system temp dir and moves it over,
which is a copy, not an atomic rename, when that dir is on another file system, and leaves the temporary
behind after a kill; :class:`AtomicCheckpointIO` stages it beside the target instead (the run directory
removes such leftovers when it is reopened), so a kill at any moment leaves the previous or the new
checkpoint, never a partial one. (The global torch RNG state travels in the checkpoint via TrustModule;
shuffling and augmentation draw from generators seeded per epoch, see trustbench/data/loaders.py.)
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins import TorchCheckpointIO

from trustbench.results.record import write_bytes_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint format, written by `write_bytes_atomically` (temporary in the same
    directory, fsynced, renamed over the target)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomically(Path(path), buffer.getvalue())


class EpochEndCheckpoint(pl.callbacks.Checkpoint):
    # A Checkpoint subclass, so Lightning runs it after the module's own on_train_epoch_end, whose logged
    # epoch metrics the checkpoint then holds (trustbench.loggers.KeepEpochRow), and adds no ModelCheckpoint.
    """Save a full training checkpoint to `path` at the end of every training epoch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep a writer the user configured
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # every rank takes part; rank 0 writes
