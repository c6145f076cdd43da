"""Checks on a composed config that stop an impossible run before any work, with one clear line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig

from trustbench.attacks.settings import AdversarialSettings
from trustbench.backbones.facts import backbone_facts
from trustbench.data.names import dataset_kind
from trustbench.errors import ConfigError
from trustbench.schema import validate
from trustbench.stress.settings import StressSettings
from trustbench.tasks import check_output_shape, check_task

if TYPE_CHECKING:  # checked before torch is imported: see check_choices
    from trustbench.data.arrays import ArrayDataset

# Which data kinds each backbone input kind accepts: vector backbones flatten images, image ones need C×H×W.
ACCEPTED_DATA_KINDS = {"image": ("image",), "vector": ("image", "tabular")}


def data_kind(cfg: DictConfig) -> str:
    """The data's kind as its config declares it (`data.kind`), else as the catalog knows its name."""
    return cfg.data.get("kind") or dataset_kind(cfg.data.name)


def check_choices(cfg: DictConfig) -> None:
    """Raise ConfigError when a value is invalid or the chosen data, backbone and method cannot work
    together; everything here is read from the config, so it runs before any data or model is built."""
    validate(cfg)
    check_task(cfg)
    kind = data_kind(cfg)
    method_kinds = cfg.method.get("data_kinds")
    if method_kinds and kind not in method_kinds:
        raise ConfigError(
            f"method {cfg.method.name!r} works on {' or '.join(method_kinds)} data, but data "
            f"{cfg.data.name!r} is {kind}; choose a method for {kind} data (trustbench list method)"
        )
    backbone = backbone_facts(cfg.backbone.net._target_)
    check_output_shape(cfg, backbone.dense_output)
    if kind not in ACCEPTED_DATA_KINDS[backbone.input_kind]:
        raise ConfigError(
            f"backbone {cfg.backbone.name!r} needs {backbone.input_kind} inputs (C×H×W) but data "
            f"{cfg.data.name!r} is {kind}; use backbone=mlp or backbone=linear for tabular data"
        )
    if cfg.method.get("needs_concepts") and not cfg.data.get("concepts"):
        raise ConfigError(
            f"method {cfg.method.name!r} learns concepts, but data {cfg.data.name!r} annotates none; use "
            "data=digit_mosaic"
        )
    if cfg.method.get("needs_conv") and backbone.input_kind != "image":
        raise ConfigError(
            f"method {cfg.method.name!r} reads the last convolution layer, but backbone "
            f"{cfg.backbone.name!r} has none; use a convolutional backbone (lenet, cnn, resnet18, wrn28_10)"
        )
    if cfg.method.get("needs_features") and not backbone.has_features:
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
    if cfg.method.get("needs_dropout") and not 0 < (cfg.backbone.net.get("dropout") or 0) < 1:
        raise ConfigError(
            f"method {cfg.method.name!r} samples dropout at test time, but backbone.net.dropout="
            f"{cfg.backbone.net.get('dropout')}; allowed: 0 < backbone.net.dropout < 1 (the method sets 0.1)"
        )
    if cfg.method.get("needs_annotations") and not cfg.data.get("annotations"):
        raise ConfigError(
            f"method {cfg.method.name!r} trains on per-pixel annotations, but data {cfg.data.name!r} has "
            "none; use data=decoy_mnist or data=decoy_fashion_mnist"
        )
    if cfg.data.get("num_classes") is not None:
        _check_binary(cfg, cfg.data.name, cfg.data.num_classes)
    if "stress" in cfg.data.get("suites", []):  # its settings, before training (features need the data)
        StressSettings.from_config(cfg.data.get("stress"), cfg.seed, images=kind == "image")
    if "adversarial" in cfg.data.get("suites", []):
        AdversarialSettings.from_config(cfg.data.get("adversarial"))
    if cfg.get("audit"):
        from trustbench.audit.plan import check_audit_choices

        check_audit_choices(cfg)


def check_dataset(cfg: DictConfig, dataset: ArrayDataset) -> None:
    """Raise ConfigError when the loaded data cannot serve the chosen method or suites (known only once
    the data is read: its number of classes, unless the data config declares `num_classes`)."""
    _check_binary(cfg, dataset.name, dataset.num_classes)


def _check_binary(cfg: DictConfig, data_name: str, num_classes: int) -> None:
    """Fairness suites and group-debiasing methods need two classes (class 1 = favourable outcome)."""
    binary_only = [suite for suite in cfg.data.get("suites", []) if suite == "fairness"]
    if cfg.method.get("needs_groups"):
        binary_only.append(f"method {cfg.method.name!r}")
    if binary_only and num_classes != 2:
        raise ConfigError(
            f"{' and '.join(binary_only)} need a binary task (class 1 = favourable outcome), but "
            f"{data_name} has {num_classes} classes; use adult, compas, german, celeba or "
            "mnist_semi_random"
        )
