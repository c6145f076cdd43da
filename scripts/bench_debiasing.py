"""Training cost of the debiasing methods vs ERM, as ratios measured in one process on the same batches.

Each method (configured exactly as `trustbench run method=NAME data=DATA` would build it) runs full
training epochs over the real training split: for every batch of the seeded epoch order, its loss (task
loss + fairness term on the batch's logits, labels and protected group), backward and optimiser step.
Reported: the median epoch time over `--repeats` epochs after one warm-up epoch, the methods taking turns
epoch by epoch, and its ratio to the plain classifier trained on the same batches (target for w2reg:
<= 1.3x).

    python scripts/bench_debiasing.py [--data adult] [--repeats 3]
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


def epoch_timer(module: FairClassifier, datamodule: TensorDataModule) -> Callable[[int], float]:
    """A function that runs epoch `e` (loss, backward, step on every training batch) and returns its time."""
    optimizer = module.optimizer_factory(params=module.parameters())
    loader = datamodule.train_dataloader()
    if isinstance(module, Reweighing):  # its weights are fixed from the training split at fit start
        module.cell_weights.copy_(
            reweighing_weights(datamodule.y_train, datamodule.groups_train[datamodule.protected])
        )

    def one_epoch(epoch: int) -> float:
        loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        module.train()
        for x, y, group in loader:
            optimizer.zero_grad(set_to_none=True)
            logits = module.backbone(x)
            (module.task_loss(logits, y, group) + module.fairness_term(logits, y, group)).backward()
            optimizer.step()
        return time.perf_counter() - start

    return one_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="adult", help="a dataset with a protected attribute")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--data-dir", default="~/.cache/trustbench")
    args = parser.parse_args()
    dataset = load(args.data, args.data_dir)
    timers = {}
    for method in METHODS:
        module, datamodule = build(method, args.data, dataset)
        timers[method] = epoch_timer(module, datamodule)
        timers[method](0)  # warm-up
    # Methods take turns epoch by epoch, so a slow spell of the machine hits all of them alike.
    samples: dict[str, list[float]] = {method: [] for method in METHODS}
    for epoch in range(1, args.repeats + 1):
        for method, timer in timers.items():
            samples[method].append(timer(epoch))
    times = {method: statistics.median(values) for method, values in samples.items()}
    batches = len(datamodule.train_dataloader())
    print(
        f"{args.data}: {len(datamodule.x_train)} training rows, {batches} batches per epoch, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"{'method':<12} {'s/epoch':>8} {'vs erm':>7}")
    for method, seconds in times.items():
        print(f"{method:<12} {seconds:8.3f} {seconds / times['erm']:6.2f}x")


if __name__ == "__main__":
    main()
