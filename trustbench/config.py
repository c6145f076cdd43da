"""Checks on a composed config that stop an impossible run before any work, with one clear line."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig

from trustbench.data.arrays import ArrayDataset
from trustbench.data.catalog import dataset_kind
from trustbench.errors import ConfigError

# Which data kinds each backbone input kind accepts: vector backbones flatten images, image ones need C×H×W.
ACCEPTED_DATA_KINDS = {"image": ("image",), "vector": ("image", "tabular")}


def check_choices(cfg: DictConfig) -> None:
    """Raise ConfigError when the chosen data, backbone and method cannot work together."""
    data_kind = dataset_kind(cfg.data.name)
    backbone_cls = get_class(cfg.backbone.net._target_)
    if data_kind not in ACCEPTED_DATA_KINDS[backbone_cls.input_kind]:
        raise ConfigError(
            f"backbone {cfg.backbone.name!r} needs {backbone_cls.input_kind} inputs (C×H×W) but data "
            f"{cfg.data.name!r} is {data_kind}; use backbone=mlp or backbone=linear for tabular data"
        )
    if cfg.method.get("needs_features") and getattr(backbone_cls, "feature_dim", 0) is None:
        raise ConfigError(
            f"method {cfg.method.name!r} needs penultimate features but backbone {cfg.backbone.name!r} has "
            "no feature layer; use a backbone with features (mlp, cnn, lenet, resnet18, wrn28_10)"
        )
    if cfg.method.get("evaluation") == "ood" and not cfg.data.get("ood_benchmark"):
        raise ConfigError(
            f"method {cfg.method.name!r} evaluates OOD detection, but data {cfg.data.name!r} defines no "
            "ood_benchmark (near/far/val sets); use image data such as mnist, fashion_mnist or cifar10"
        )
    if cfg.method.get("needs_groups") and not cfg.data.get("protected"):
        raise ConfigError(
            f"method {cfg.method.name!r} trains against a protected attribute, but data {cfg.data.name!r} "
            "names none; use data with groups (adult, compas, german, celeba, mnist_semi_random) or set "
            "data.protected"
        )


def check_dataset(cfg: DictConfig, dataset: ArrayDataset) -> None:
    """Raise ConfigError when the loaded data cannot serve the chosen method or suites (known only once
    the data is read: its number of classes)."""
    binary_only = [suite for suite in cfg.data.get("suites", []) if suite == "fairness"]
    if cfg.method.get("needs_groups"):
        binary_only.append(f"method {cfg.method.name!r}")
    if binary_only and dataset.num_classes != 2:
        raise ConfigError(
            f"{' and '.join(binary_only)} need a binary task (class 1 = favourable outcome), but "
            f"{dataset.name} has {dataset.num_classes} classes; use adult, compas, german, celeba or "
            "mnist_semi_random"
        )
