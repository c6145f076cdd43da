"""A resumable checkpoint after every training epoch: `checkpoints/last.ckpt`, replaced atomically.

Lightning's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes "last" only when it also saves a top-k
checkpoint, so with ``save_top_k=0`` a run had no checkpoint until training ended. This callback saves at
every epoch end instead, into a temporary file in the checkpoint directory that is then renamed over the
old one: a kill at any moment leaves the previous or the new checkpoint, never a partial one. (The global
torch RNG state travels in the checkpoint via TrustModule; shuffling and augmentation draw from
generators seeded per epoch, see trustbench/data/loaders.py.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytorch_lightning as pl


class EpochEndCheckpoint(pl.callbacks.Checkpoint):
    # A Checkpoint subclass, so Lightning runs it after the module's own on_train_epoch_end, whose logged
    # epoch metrics the checkpoint then holds (trustbench.loggers.KeepEpochRow), and adds no ModelCheckpoint.
    """Save a full training checkpoint to `path` at the end of every training epoch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        trainer.save_checkpoint(temporary)  # every rank takes part; only global rank 0 writes
        if trainer.is_global_zero:
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, self.path)
