"""A damaged `checkpoints/last.ckpt` is named in one line and moved aside, never resumed from or deleted
(issue 11 item 3); Lightning's checkpoint is staged beside it, not in the system temp dir (item 4)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from conftest import FAST, result, trustbench
from damaged_files import DAMAGES, truncate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from trustbench.checkpointing import EpochEndCheckpoint
from trustbench.errors import RunDirError
from trustbench.results.rundir import prepare_run_dir


class TinyRegression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(16, 8)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def train_with_epoch_checkpoints(checkpoint: Path, epochs: int = 2) -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 16)
    loader = DataLoader(TensorDataset(x, x[:, :8] * 2), batch_size=8)
    trainer = pl.Trainer(
        max_epochs=epochs,
        callbacks=[EpochEndCheckpoint(checkpoint)],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(TinyRegression(), loader)


def test_lightning_stages_the_checkpoint_beside_it_not_in_the_system_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no_system_temp_dir"))  # any use there fails
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    train_with_epoch_checkpoints(checkpoint)
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 1
    assert [p.name for p in checkpoint.parent.iterdir()] == ["last.ckpt"]


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real Lightning checkpoint, written by the run's epoch-end callback."""
    path = tmp_path_factory.mktemp("trained") / "last.ckpt"
    train_with_epoch_checkpoints(path)
    return path.read_bytes()


CFG = OmegaConf.create({"seed": 0, "resume": "auto"})


def unfinished_run(run_dir: Path, checkpoint_bytes: bytes) -> Path:
    """A run dir as a killed run leaves it: its saved config and a checkpoint, no result.json."""
    prepare_run_dir(run_dir, CFG)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(checkpoint_bytes)
    return checkpoint


def damage_checkpoint(checkpoint: Path, damage_file) -> bytes:
    damage_file(checkpoint, torch.load(checkpoint, weights_only=True)["state_dict"]["layer.weight"])
    return checkpoint.read_bytes()


def test_an_intact_checkpoint_is_resumed_from(tmp_path: Path, checkpoint_bytes: bytes) -> None:
    checkpoint = unfinished_run(tmp_path / "run", checkpoint_bytes)
    assert prepare_run_dir(tmp_path / "run", CFG) == checkpoint


@pytest.mark.parametrize("damage_file", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_damaged_checkpoint_is_moved_aside_with_one_warning_and_the_run_starts_over(
    tmp_path: Path, checkpoint_bytes: bytes, damage_file, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = unfinished_run(tmp_path / "run", checkpoint_bytes)
    damaged = damage_checkpoint(checkpoint, damage_file)

    with caplog.at_level(logging.WARNING, logger="trustbench"):
        assert prepare_run_dir(tmp_path / "run", CFG) is None

    (aside,) = checkpoint.parent.glob("last.ckpt.damaged-*")
    assert aside.read_bytes() == damaged and not checkpoint.exists()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert str(checkpoint) in warning and aside.name in warning


@pytest.mark.parametrize("damage_file", DAMAGES.values(), ids=DAMAGES.keys())
def test_resume_true_stops_in_one_line_naming_the_damaged_checkpoint(
    tmp_path: Path, checkpoint_bytes: bytes, damage_file
) -> None:
    checkpoint = unfinished_run(tmp_path / "run", checkpoint_bytes)
    damaged = damage_checkpoint(checkpoint, damage_file)
    with pytest.raises(RunDirError) as stopped:
        prepare_run_dir(tmp_path / "run", OmegaConf.merge(CFG, {"resume": True}))
    message = str(stopped.value)
    assert "\n" not in message and str(checkpoint) in message and "resume=auto" in message
    assert checkpoint.read_bytes() == damaged  # left where it was


@pytest.mark.slow
def test_a_run_over_a_truncated_checkpoint_warns_once_and_ends_as_a_fresh_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trustbench("run", *FAST, f"hydra.run.dir={run_dir}")
    fresh = result(run_dir)["metrics"]
    (run_dir / "result.json").unlink()  # as a run killed before its end leaves it
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    truncate(checkpoint)

    again = trustbench("run", *FAST, f"hydra.run.dir={run_dir}")

    assert "Traceback" not in again.stderr
    (warning,) = [line for line in again.stderr.splitlines() if "damaged" in line]
    assert str(checkpoint) in warning
    assert result(run_dir)["metrics"] == fresh
    assert len(list(checkpoint.parent.glob("last.ckpt.damaged-*"))) == 1
