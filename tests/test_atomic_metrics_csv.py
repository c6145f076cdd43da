"""metrics.csv is only ever replaced whole: a run killed while its CSV log is written keeps the rows it had.

Lightning's writer rewrites metrics.csv in place when a new column appears (truncate, then write); a kill in
that moment lost every earlier row, which a resumed run then lacked (tests/test_resume.py saw it once).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from trustbench.loggers import AtomicCSVLogger


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_each_save_holds_every_row_under_the_union_of_the_columns(tmp_path: Path) -> None:
    logger = AtomicCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    logger.log_metrics({"train/loss_step": 0.5}, step=49)
    logger.save()
    logger.log_metrics({"val/acc": 0.9, "epoch": 0}, step=60)  # new columns: Lightning rewrites here
    logger.save()
    written = rows(tmp_path / "csv" / "metrics.csv")
    assert [row["step"] for row in written] == ["49", "60"]
    assert written[0]["train/loss_step"] == "0.5" and written[0]["val/acc"] == ""
    assert written[1]["val/acc"] == "0.9" and written[1]["epoch"] == "0"


def test_a_save_killed_before_its_rename_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = AtomicCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    logger.log_metrics({"train/loss_step": 0.5}, step=49)
    logger.save()
    before = (tmp_path / "csv" / "metrics.csv").read_bytes()

    def killed(source: str, target: str) -> None:
        raise KeyboardInterrupt  # stands for SIGKILL between writing the new file and renaming it

    monkeypatch.setattr(os, "replace", killed)
    logger.log_metrics({"val/acc": 0.9, "epoch": 0}, step=60)
    with pytest.raises(KeyboardInterrupt):
        logger.save()
    assert (tmp_path / "csv" / "metrics.csv").read_bytes() == before
    assert [path.name for path in (tmp_path / "csv").iterdir()] == ["metrics.csv"]  # no temporary left


def test_opening_the_log_again_keeps_the_file_until_its_first_save_replaces_it(tmp_path: Path) -> None:
    first = AtomicCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    first.log_metrics({"train/loss_step": 0.5}, step=49)
    first.save()
    resumed = AtomicCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    writer = resumed.experiment  # Lightning's writer deleted metrics.csv here
    assert [row["step"] for row in rows(tmp_path / "csv" / "metrics.csv")] == ["49"]
    writer.metrics.extend(rows(tmp_path / "csv" / "metrics.csv"))  # as continue_csv_logs does
    resumed.log_metrics({"train/loss_step": 0.25}, step=99)
    resumed.save()
    assert [row["step"] for row in rows(tmp_path / "csv" / "metrics.csv")] == ["49", "99"]
