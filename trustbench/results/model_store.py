"""Trained classifiers shared by post-hoc methods: train once per recipe, reuse for every method.

A post-hoc method (an OOD detector, temperature scaling applied later, ...) never retrains: its run looks
up the classifier that its training recipe would produce — keyed by the data split, backbone, method
training recipe, trainer settings that change the weights, and seed — and trains it only when absent.
So `trustbench run -m method=msp,energy,knn seed=0,1,2` trains three models, not nine, also when its jobs
run in parallel: a job looks up and trains under the recipe's lock (:func:`recipe_lock`), so the second
job of a recipe waits and reuses the first one's classifier. An entry that fails its check
(trustbench/results/archives.py) counts as absent and is trained again.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from trustbench.data.class_subset import configured_known_classes
from trustbench.data.user_files import user_data_files, user_data_settings
from trustbench.fingerprint import fingerprint_config
from trustbench.results.archives import intact
from trustbench.results.locking import locked
from trustbench.results.record import write_bytes_atomically

# Data settings that change the trained weights (the OOD and shift sets only change the evaluation).
TRAINING_DATA_KEYS = ("name", "val_size", "batch_size", "normalize", "augment")
# A regression set's settings that change its rows (UCI split, subset, rotation); added only when set, so the
# recipes, and stored models, of classification data keep their keys.
REGRESSION_DATA_KEYS = ("split", "max_rows", "rotation", "train_rows", "test_rows")
# Trainer settings that change what is displayed or logged, not the weights.
DISPLAY_ONLY_TRAINER_KEYS = ("enable_progress_bar", "enable_model_summary", "log_every_n_steps")


def training_recipe(cfg: DictConfig) -> dict[str, Any]:
    """Everything that determines the trained weights, as a plain mapping."""
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    for key in DISPLAY_ONLY_TRAINER_KEYS:
        trainer.pop(key, None)
    method = cfg.method
    scheduler = OmegaConf.to_container(method.scheduler, resolve=True) if method.get("scheduler") else None
    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data = {key: data_cfg.get(key) for key in TRAINING_DATA_KEYS}
    data |= {key: data_cfg[key] for key in REGRESSION_DATA_KEYS if data_cfg.get(key) is not None}
    known = configured_known_classes(data_cfg)
    if known is not None:  # an open-set split trains on its own classes (added only when set, as above)
        data["known_classes"] = known
    if cfg.data.get("path"):  # a user's own files: two datasets under one data config must not share weights
        data["file_sha256"] = [file_digest(path) for path in user_data_files(cfg.data)]
        data["reading"] = user_data_settings(cfg.data)  # e.g. a CSV's target and categorical columns
    return {
        "data": data,
        "backbone": OmegaConf.to_container(cfg.backbone, resolve=True),
        "module": OmegaConf.to_container(method.module, resolve=True),
        "optimizer": OmegaConf.to_container(method.optimizer, resolve=True),
        "scheduler": scheduler,
        "trainer": trainer,
        "threads": cfg.threads,  # CPU reductions split over another thread count sum in another order
        "seed": cfg.seed,
    }


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks (a missing file is the data reader's error to report)."""
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stored_model_path(cfg: DictConfig) -> Path:
    """Where the classifier of this run's training recipe lives in the model store."""
    key = fingerprint_config(training_recipe(cfg))
    return Path(cfg.paths.model_store) / f"{cfg.data.name}-{cfg.backbone.name}-s{cfg.seed}-{key}.pt"


def stored_model(cfg: DictConfig) -> Path | None:
    """The model store's classifier of this run's training recipe, or None when it is absent or damaged."""
    path = stored_model_path(cfg)
    return path if intact(path) else None


@contextmanager
def recipe_lock(cfg: DictConfig) -> Iterator[None]:
    """Hold while looking up, training and storing this recipe's classifier: concurrent jobs train it once."""
    path = stored_model_path(cfg)
    with locked(path.with_name(f".{path.name}.lock"), waiting_for="training the same classifier"):
        yield


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """Store the module's weights (state dict) atomically."""
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    write_bytes_atomically(path, buffer.getvalue())


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Load weights saved by `save_weights`, or a Lightning checkpoint's `state_dict`, into `module`."""
    stored = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(stored.get("state_dict", stored) if isinstance(stored, dict) else stored)
