"""Training cost of the debiasing methods vs ERM, as ratios measured in one process on the same batches.

Each method (configured exactly as `trustbench run method=NAME data=DATA` would build it) runs full
training epochs over the real training split: for every batch of the seeded epoch order, its loss (task
loss + fairness term on the batch's logits, labels and protected group), backward and optimiser step.
Reported: the median epoch time over `--repeats` epochs after one warm-up epoch, the methods taking turns
batch by batch (so a slow spell of a shared machine hits all of them alike; only the steps are timed, not
the loader), and its ratio to the plain classifier trained on the same batches (target for w2reg:
<= 1.10x). Each batch starts the turn at the next method, so none always runs first after the loader.
Both wall time and the process's CPU time are reported: CPU time leaves out the spells in which other
processes hold the core, which on a shared machine moved wall-time ratios by several hundredths between
runs of the same code.

    python scripts/bench_debiasing.py [--data adult] [--repeats 7] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from trustbench.app import CONFIG_DIR
from trustbench.data.catalog import load
from trustbench.data.loaders import TensorDataModule
from trustbench.experiment import build_module
from trustbench.methods.debiasing.classifier import FairClassifier
from trustbench.methods.debiasing.reweighing import Reweighing, reweighing_weights

METHODS = ("erm", "w2reg", "dp_penalty", "reweighing", "adversarial")


def build(method: str, data: str, dataset) -> tuple[FairClassifier, TensorDataModule]:
    """The method's module, with plain ERM built as the group-aware base classifier so batches match."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "config", overrides=[f"data={data}", f"method={'w2reg' if method == 'erm' else method}"]
        )
    torch.manual_seed(0)
    backbone = instantiate(cfg.backbone.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    module = build_module(cfg, backbone, dataset.num_classes)
    if method == "erm":
        module = FairClassifier(backbone, dataset.num_classes, module.optimizer_factory)
    datamodule = TensorDataModule(
        dataset, cfg.data.val_size, cfg.data.batch_size, seed=0, protected=cfg.data.protected
    )
    return module, datamodule


def step_function(module: FairClassifier, datamodule: TensorDataModule) -> Callable[..., None]:
    """A function that takes one training step of `module` (loss, backward, optimiser step) on a batch."""
    optimizer = module.optimizer_factory(params=module.parameters())
    if isinstance(module, Reweighing):  # its weights are fixed from the training split at fit start
        module.cell_weights.copy_(
            reweighing_weights(datamodule.y_train, datamodule.groups_train[datamodule.protected])
        )
    module.train()

    def step(x: torch.Tensor, y: torch.Tensor, group: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        logits = module.backbone(x)
        (module.task_loss(logits, y, group) + module.fairness_term(logits, y, group)).backward()
        optimizer.step()

    return step


def epoch_seconds(steps: dict[str, Callable[..., None]], loader) -> dict[str, tuple[float, float]]:
    """One epoch of every method, taking turns batch by batch; each method's summed (wall, CPU) step time."""
    seconds = {method: (0.0, 0.0) for method in steps}
    turn = list(steps.items())
    for index, batch in enumerate(loader):
        first = index % len(turn)
        for method, step in turn[first:] + turn[:first]:
            wall, cpu = time.perf_counter(), time.process_time()
            step(*batch)
            seconds[method] = (
                seconds[method][0] + time.perf_counter() - wall,
                seconds[method][1] + time.process_time() - cpu,
            )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="adult", help="a dataset with a protected attribute")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data-dir", default="~/.cache/trustbench")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: with torch's own 2 on a busy 2-core machine, epochs took 15x longer "
        "and the ratios wandered from 0.87x to 1.04x)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load(args.data, args.data_dir)
    steps = {}
    for method in METHODS:
        module, datamodule = build(method, args.data, dataset)
        steps[method] = step_function(module, datamodule)
    loader = datamodule.train_dataloader()  # every method's data module splits and orders rows alike
    epoch_seconds(steps, loader)  # warm-up
    samples: dict[str, list[tuple[float, float]]] = {method: [] for method in METHODS}
    for epoch in range(1, args.repeats + 1):
        loader.sampler.set_epoch(epoch)
        for method, seconds in epoch_seconds(steps, loader).items():
            samples[method].append(seconds)
    wall = {method: statistics.median(wall for wall, _ in values) for method, values in samples.items()}
    cpu = {method: statistics.median(cpu for _, cpu in values) for method, values in samples.items()}
    print(
        f"{args.data}: {len(datamodule.x_train)} training rows, {len(loader)} batches per epoch, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} epochs"
    )
    print(f"{'method':<12} {'wall s/epoch':>12} {'vs erm':>7} {'CPU s/epoch':>12} {'vs erm':>7}")
    for method in METHODS:
        print(
            f"{method:<12} {wall[method]:12.3f} {wall[method] / wall['erm']:6.3f}x "
            f"{cpu[method]:12.3f} {cpu[method] / cpu['erm']:6.3f}x"
        )


if __name__ == "__main__":
    main()
