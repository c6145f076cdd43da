"""What the feature cache buys: the whole OOD table of detectors costs about as much as one detector.

For each backbone (default: LeNet and DUQ's CNN), on one classifier trained here for `--epochs` (default 1)
on real data, all in this one process and with the runner's thread count (`threads` in config.yaml):
  * extraction: one inference pass over the ID train/val/test splits and every OOD test set, what the
    feature cache stores (one detector alone needs all of it but the validation split);
  * each feature-based detector's fit (on the split it fits on) + scoring of the test and OOD sets from
    the cached tensors, at its default hyperparameters;
  * the whole table (extraction + every feature-based detector that `experiment=ood_<data>` sweeps) vs one
    detector (extraction without validation + MSP): target <= 1.2x; and the same with every feature-based
    detector of the registry (the OOD table's plus the supervisors': DeepGini, LSA, DSA, MDSA, OpenMax);
  * KNN with the index it chooses vs exact flat search: time, and the AUROC of each OOD set.
Every time is the fastest of `--repeats` runs: on a shared machine the minimum is the least disturbed one.

    python scripts/bench_ood.py [--data fashion_mnist] [--backbones lenet,cnn] [--epochs 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from pytorch_lightning.loggers import CSVLogger

from trustbench.app import CONFIG_DIR
from trustbench.cli import config_choices
from trustbench.data.catalog import load
from trustbench.data.loaders import TensorDataModule
from trustbench.data.ood_sets import build_ood_inputs
from trustbench.experiment import build_module, build_trainer
from trustbench.methods.ood.cache import extract_features
from trustbench.methods.ood.detector import DETECTORS, Detector, Features, build
from trustbench.methods.ood.knn import EXACT_LIMIT
from trustbench.metrics.ood import ood_metrics

BATCH_SIZE = 512


def fastest(repeats: int, function: Callable[[], object]) -> tuple[object, float]:
    """`function()`'s value and the smallest of `repeats` wall-clock times."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return value, min(times)


def fitted(name: str, fit_on: dict[str, Features], head: torch.nn.Linear, **hparams) -> Detector:
    cls = DETECTORS[name]
    return build(name, **hparams).fit(fit_on[cls.fit_split], head=head if cls.needs_head else None)


def run_detector(name: str, fit_on: dict[str, Features], scored: dict[str, Features], head) -> None:
    detector = fitted(name, fit_on, head)
    for features in scored.values():
        detector.score(features)


def ood_table_detectors(data: str) -> set[str]:
    """The methods `experiment=ood_<data>` sweeps: the OOD table of that dataset."""
    tables = sorted(
        name.removeprefix("ood_") for name in config_choices("experiment") if name.startswith("ood_")
    )
    if data not in tables:
        raise SystemExit(
            f"bench_ood: no experiment ood_{data} names the OOD table of {data}; --data: {tables}"
        )
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"experiment=ood_{data}"], return_hydra_config=True)
    return set(cfg.hydra.sweeper.params.method.split(","))


def trained_classifier(data: str, backbone_name: str, epochs: int):
    """The config, data module, dataset and backbone of a classifier trained for `epochs` epochs."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}", f"backbone={backbone_name}", "method=knn"])
    torch.set_num_threads(cfg.threads)  # as `trustbench run` does; faiss follows torch
    torch.manual_seed(cfg.seed)
    dataset = load(cfg.data.name, cfg.paths.data_dir)
    datamodule = TensorDataModule(dataset, cfg.data.val_size, cfg.data.batch_size, cfg.seed)
    backbone = instantiate(cfg.backbone.net, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    module = build_module(cfg, backbone, dataset.num_classes)
    with tempfile.TemporaryDirectory() as scratch:
        trainer = build_trainer(
            cfg, logger=CSVLogger(scratch), enable_checkpointing=False, max_epochs=epochs, limit_val_batches=0
        )
        trainer.fit(module, datamodule=datamodule)
    return cfg, datamodule, dataset, backbone.eval()


def bench(data: str, backbone_name: str, epochs: int, repeats: int) -> float:
    """Print one backbone's figures; return the table / one-detector ratio."""
    table_methods = ood_table_detectors(data)  # first: an unknown table fails before any training
    cfg, datamodule, dataset, backbone = trained_classifier(data, backbone_name, epochs)
    benchmark = cfg.data.ood_benchmark
    ood_names = [*benchmark.near, *benchmark.far]
    inputs = {
        "train": datamodule.x_train,
        "val": datamodule.x_val,
        "test": datamodule.x_test,
        **{name: build_ood_inputs(name, dataset, cfg.paths.data_dir, cfg.seed) for name in ood_names},
    }
    seconds = {}
    features = {}
    for split, x in inputs.items():
        features[split], seconds[split] = fastest(
            repeats, lambda x=x: extract_features(backbone, x, BATCH_SIZE)
        )
    features["train"].labels, features["val"].labels = datamodule.y_train, datamodule.y_val
    fit_on = {"train": features["train"], "val": features["val"]}
    scored = {split: features[split] for split in ["test", *ood_names]}
    detectors = sorted(name for name, cls in DETECTORS.items() if not cls.needs_network)
    per_detector = {
        name: fastest(repeats, lambda name=name: run_detector(name, fit_on, scored, backbone.head))[1]
        for name in detectors
    }

    extraction = sum(seconds.values())
    table = table_methods & set(detectors)
    full_table = extraction + sum(per_detector[name] for name in table)
    registry = extraction + sum(per_detector.values())
    one_detector = extraction - seconds["val"] + per_detector["msp"]
    rows = sum(len(x) for x in inputs.values())
    print(
        f"\n{data}, {backbone_name} ({epochs} epoch), {torch.get_num_threads()} threads, "
        f"{len(detectors)} feature-based detectors, {rows} inputs in {len(inputs)} splits, "
        f"fastest of {repeats}"
    )
    print(f"extraction (one inference pass over every split): {extraction:.2f} s")
    for name, value in sorted(per_detector.items(), key=lambda item: -item[1]):
        print(f"  {name:<22} fit + score from cache: {value:.3f} s ({value / extraction:.1%} of extraction)")
    ratio = full_table / one_detector
    print(
        f"whole OOD table ({len(table)} detectors of experiment=ood_{data}): {full_table:.2f} s; "
        f"one detector (msp, no validation split): {one_detector:.2f} s; ratio {ratio:.2f} (target <= 1.2)"
    )
    print(
        f"every feature-based detector ({len(detectors)}): {registry:.2f} s; "
        f"ratio {registry / one_detector:.2f}"
    )
    knn_report(features["train"], scored, repeats)
    return ratio


def knn_scores(train: Features, scored: dict[str, Features], **hparams) -> dict[str, torch.Tensor]:
    knn = fitted("knn", {"train": train}, None, **hparams)
    return {split: knn.score(features) for split, features in scored.items()}


def knn_report(train: Features, scored: dict[str, Features], repeats: int) -> None:
    """KNN's own index vs exact flat search: time and AUROC per OOD set."""
    index = "IVF" if len(train.logits) > EXACT_LIMIT else "exact"
    chosen, chosen_seconds = fastest(repeats, lambda: knn_scores(train, scored))
    exact, exact_seconds = fastest(repeats, lambda: knn_scores(train, scored, exact_limit=len(train.logits)))
    print(
        f"KNN (k=50) over {len(train.logits)} training features: {index} index {chosen_seconds:.2f} s, "
        f"exact flat index {exact_seconds:.2f} s"
    )
    for split in scored:
        if split != "test":
            approximate = ood_metrics(chosen["test"], chosen[split])["auroc"]
            exact_auroc = ood_metrics(exact["test"], exact[split])["auroc"]
            print(f"  AUROC {split:<16} {index} {approximate:.5f}  exact {exact_auroc:.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fashion_mnist")
    parser.add_argument("--backbones", default="lenet,cnn", help="comma-separated backbone configs")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios = {name: bench(args.data, name, args.epochs, args.repeats) for name in args.backbones.split(",")}
    print("\nwhole table / one detector: " + ", ".join(f"{name} {r:.2f}" for name, r in ratios.items()))


if __name__ == "__main__":
    main()
