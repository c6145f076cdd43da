"""How much does `trustbench run` cost over a hand-written PyTorch loop? And how fast is the CLI?

Trains one epoch of the same model (DUQ's CNN), optimiser and batch size on the same real MNIST tensors,
once through trustbench's path (composed config, TrustModule, TensorDataModule, Lightning Trainer with
the CSV logger) and once as a plain loop, alternating in one process, and prints the ratio of median
epoch times (target ≤ 1.10). Then times `trustbench --help` and `trustbench list` in fresh processes.

Then the start-up of a run, in fresh processes (median of `--repeats`): the seconds from starting
`trustbench run data=mnist` to its first training batch (target ≤ 3 s), and for wrong overrides (a
misspelled key, a bad value, two impossible combinations) the seconds until it has failed (target < 1 s).
The first run also fills the decoded-data cache, so it is left out of the median.

    python scripts/bench_overhead.py [--rows 12800] [--repeats 3] [--startup-only]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from pytorch_lightning.loggers import CSVLogger
from torch.nn import functional as F

from trustbench.app import CONFIG_DIR
from trustbench.data.arrays import ArrayDataset
from trustbench.data.catalog import load
from trustbench.data.loaders import TensorDataModule
from trustbench.experiment import build_module, build_trainer


class EpochTimer(pl.Callback):
    """Wall time of the training epoch alone, from its first batch to its end (no Trainer set-up)."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seconds = time.perf_counter() - self.start


def trustbench_epoch(cfg, dataset: ArrayDataset, log_dir: Path) -> tuple[float, float]:
    """(epoch seconds, whole `fit` seconds including the Trainer's one-off set-up)."""
    torch.manual_seed(cfg.seed)
    backbone = instantiate(cfg.backbone.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    module = build_module(cfg, backbone, dataset.num_classes)
    datamodule = TensorDataModule(dataset, val_size=0, batch_size=cfg.data.batch_size, seed=cfg.seed)
    timer = EpochTimer()
    trainer = build_trainer(
        cfg,
        logger=CSVLogger(log_dir),
        callbacks=[timer],
        enable_checkpointing=False,
        limit_val_batches=0,
        max_epochs=1,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    return timer.seconds, time.perf_counter() - start


def hand_written_epoch(cfg, dataset: ArrayDataset) -> float:
    torch.manual_seed(cfg.seed)
    model = instantiate(cfg.backbone.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=cfg.method.optimizer.lr,
        momentum=cfg.method.optimizer.momentum,
        weight_decay=cfg.method.optimizer.weight_decay,
    )
    x, y, batch = dataset.x_train, dataset.y_train, cfg.data.batch_size
    start = time.perf_counter()
    model.train()
    order = torch.randperm(len(x))
    for first in range(0, len(x), batch):
        rows = order[first : first + batch]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[rows]), y[rows]).backward()
        optimizer.step()
    return time.perf_counter() - start


# Runs `trustbench run ARGS` and, at its first training batch, prints the wall clock and exits.
FIRST_BATCH_PROBE = """
import os, sys, time
from trustbench.cli import main
from trustbench.methods.base import TrustModule

def first_batch(*args):
    print(f"first batch at {time.time():.6f}", flush=True)
    os._exit(0)

TrustModule.on_train_batch_start = first_batch
main(["run", *sys.argv[1:]])
"""
# A misspelled key, a bad value, and two impossible combinations (checked from facts known without torch).
BAD_OVERRIDES = (
    ("trainer.max_epoch=3",),
    ("data.batch_size=-3",),
    ("data=adult", "backbone=lenet"),
    ("method=mc_dropout", "backbone.net.dropout=0"),
)


def seconds_to_first_batch(run_dir: Path) -> float:
    """Seconds from starting a fresh `trustbench run data=mnist` to its first training batch."""
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-c", FIRST_BATCH_PROBE, "data=mnist", f"hydra.run.dir={run_dir}"],
        check=True,
        capture_output=True,
        text=True,
    )
    stamp = next(line for line in done.stdout.splitlines() if line.startswith("first batch at "))
    return float(stamp.removeprefix("first batch at ")) - start


def seconds_to_fail(overrides: tuple[str, ...]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trustbench.cli", "run", *overrides], capture_output=True)
    if done.returncode == 0:
        raise RuntimeError(f"trustbench run {' '.join(overrides)} was expected to fail but succeeded")
    return time.perf_counter() - start


def seconds_to_import_lightning() -> float:
    """The floor under any run's start-up: a fresh interpreter importing Lightning (and so torch)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pytorch_lightning"], check=True, capture_output=True)
    return time.perf_counter() - start


def print_startup(repeats: int) -> None:
    first, floor = [], []
    with tempfile.TemporaryDirectory() as runs:
        seconds_to_first_batch(Path(runs) / "warm-up")
        for index in range(repeats):  # taking turns, so a slow spell of the machine hits both alike
            first.append(seconds_to_first_batch(Path(runs) / str(index)))
            floor.append(seconds_to_import_lightning())
    print(
        f"trustbench run data=mnist, process start to first training batch: median "
        f"{statistics.median(first):.2f} s ({', '.join(f'{t:.2f}' for t in first)}; target <= 3)"
    )
    print(
        f"  of which a fresh `import pytorch_lightning` alone takes {statistics.median(floor):.2f} s "
        f"(ratio run / import: {statistics.median(first) / statistics.median(floor):.2f})"
    )
    for overrides in BAD_OVERRIDES:
        failed = [seconds_to_fail(overrides) for _ in range(repeats)]
        seconds = statistics.median(failed)
        print(f"trustbench run {' '.join(overrides)}: fails after {seconds:.2f} s (target < 1)")


def cli_seconds(*args: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "trustbench.cli", *args], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=12800, help="training rows per epoch (default 12800)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backbone", default="cnn")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up figures")
    args = parser.parse_args()
    if args.startup_only:
        print_startup(args.repeats)
        return

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["data=mnist", f"backbone={args.backbone}", "method=erm"])
    full = load("mnist", cfg.paths.data_dir)
    dataset = ArrayDataset(
        name="mnist",
        kind="image",
        x_train=full.x_train[: args.rows],
        y_train=full.y_train[: args.rows],
        x_test=full.x_test[:1],
        y_test=full.y_test[:1],
        num_classes=full.num_classes,
    )
    hand_written_epoch(cfg, dataset)  # warm-up: allocator, kernels, thread pool
    ours, whole_fit, hand = [], [], []
    with tempfile.TemporaryDirectory() as log_dir:
        for _ in range(args.repeats):
            hand.append(hand_written_epoch(cfg, dataset))
            epoch, fit = trustbench_epoch(cfg, dataset, Path(log_dir))
            ours.append(epoch)
            whole_fit.append(fit)
    ratio = statistics.median(ours) / statistics.median(hand)
    print(
        f"threads: {torch.get_num_threads()}, rows: {args.rows}, batch: {cfg.data.batch_size}, "
        f"backbone: {args.backbone}"
    )
    print(
        f"hand-written epoch: median {statistics.median(hand):.2f} s  ({', '.join(f'{t:.2f}' for t in hand)})"
    )
    print(
        f"trustbench epoch:   median {statistics.median(ours):.2f} s  ({', '.join(f'{t:.2f}' for t in ours)})"
    )
    print(f"overhead ratio (trustbench / hand-written): {ratio:.3f}  (target <= 1.10)")
    setup = statistics.median(whole_fit) - statistics.median(ours)
    print(
        f"one-off Trainer set-up and teardown per run: {setup:.2f} s "
        f"(whole fit / hand-written epoch: {statistics.median(whole_fit) / statistics.median(hand):.3f})"
    )
    print(
        f"trustbench --help: {cli_seconds('--help'):.3f} s, trustbench list: {cli_seconds('list'):.3f} s "
        "(median of 5 fresh processes)"
    )
    print_startup(args.repeats)


if __name__ == "__main__":
    main()
