"""Task types: classification (every dataset unless its config says ``task: regression``) and regression.

A method declares the task types it supports (``method.task_types``, classification when absent); a
method that supports both keeps its regression settings in a ``method.regression`` block (module, head,
optimiser, suite) that replaces the same keys when the data is a regression task (:func:`for_task`), so
``method=mc_dropout`` means one method on either kind of data and the run path stays one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omegaconf import DictConfig, open_dict

from trustbench.errors import ConfigError
from trustbench.methods.regression.checks import check_regression_settings

if TYPE_CHECKING:  # the config checks import this module before torch
    from trustbench.data.arrays import ArrayDataset

TASKS = ("classification", "regression")
REGRESSION_METHODS = ("gaussian", "mc_dropout", "ensemble", "car", "slurp", "conformal")


def task_type(cfg: DictConfig) -> str:
    """The data's task: ``data.task``, classification when unset."""
    return cfg.data.get("task") or "classification"


def check_task(cfg: DictConfig) -> None:
    """Raise ConfigError when the method does not support the data's task type, or (regression) when a
    regression setting is out of range: one line, before any work."""
    task = task_type(cfg)
    supported = list(cfg.method.get("task_types") or ["classification"])
    if task in supported:
        if task == "regression":
            check_regression_settings(for_task(cfg))
        return
    choices = f"one of {', '.join(REGRESSION_METHODS)}" if task == "regression" else "a classification method"
    raise ConfigError(
        f"method {cfg.method.name!r} supports {' and '.join(supported)} tasks, but data {cfg.data.name!r} "
        f"is a {task} task; use {choices} (trustbench list method)"
    )


def check_output_shape(cfg: DictConfig, dense_backbone: bool) -> None:
    """Raise ConfigError unless a dense target (``data.dense``: one value per pixel) meets a backbone with
    per-pixel outputs (`dense_backbone`, the class's ``dense_output``), and a target per input a backbone
    with one output per input."""
    dense_data = bool(cfg.data.get("dense"))
    if dense_data and not dense_backbone:
        raise ConfigError(
            f"data {cfg.data.name!r} has a target per pixel, but backbone {cfg.backbone.name!r} gives one "
            "output per input; use backbone=encoder_decoder"
        )
    if dense_backbone and not dense_data:
        raise ConfigError(
            f"backbone {cfg.backbone.name!r} gives an output per pixel, but data {cfg.data.name!r} has one "
            "target per input; use it with a dense regression set (data=mnist_distance)"
        )


def for_task(cfg: DictConfig) -> DictConfig:
    """`cfg` with ``method.regression``'s keys replacing the method's own on regression data; else `cfg`."""
    overrides = cfg.method.get("regression")
    if task_type(cfg) != "regression" or not overrides:
        return cfg
    adapted = cfg.copy()
    with open_dict(adapted):
        for key in overrides:
            adapted.method[key] = overrides[key]
        del adapted.method["regression"]
    return adapted


def head_outputs(cfg: DictConfig, dataset: ArrayDataset) -> int:
    """Outputs of the backbone's head: the classes, or what a regression method's head predicts
    (``method.head_outputs``: 2 for a mean and log-variance, K for K bins)."""
    if dataset.task != "regression":
        return dataset.num_classes
    return int(cfg.method.head_outputs)


def regression_arguments(dataset: ArrayDataset, wanted: set[str]) -> dict[str, tuple[float, float]]:
    """What a regression module may ask for by constructor parameter name: ``target_range`` (the training
    targets' min and max in their own units) and ``target_scale`` (their standardisation's mean and std)."""
    if dataset.task != "regression":
        return {}
    loc, scale = dataset.target_scale
    known = {
        "target_range": (
            float(dataset.y_train.min()) * scale + loc,
            float(dataset.y_train.max()) * scale + loc,
        ),
        "target_scale": (loc, scale),
    }
    return {name: value for name, value in known.items() if name in wanted}
