"""The body of a run: build data, model and trainer from the config, fit, evaluate, log.

Rank 0 returns the evaluation metrics; DDP workers of other ranks train and then return None.
"""

from __future__ import annotations

import inspect
import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from trustbench.checkpointing import EpochEndCheckpoint
from trustbench.config import check_choices, check_dataset
from trustbench.data.arrays import ArrayDataset
from trustbench.data.catalog import load_configured
from trustbench.data.loaders import TensorDataModule
from trustbench.errors import ConfigError
from trustbench.evaluation import evaluate
from trustbench.evaluation.context import EvaluationContext
from trustbench.loggers import KeepEpochRow, continue_csv_logs, log_config, log_final
from trustbench.methods.base import TrustModule
from trustbench.results.display import print_metrics
from trustbench.results.model_store import (
    load_weights,
    recipe_lock,
    save_weights,
    stored_model,
    stored_model_path,
)
from trustbench.results.rundir import CHECKPOINT_DIR, LAST_CHECKPOINT, last_checkpoint, prepare_run_dir
from trustbench.runner import is_rank_zero
from trustbench.tasks import for_task, head_outputs, regression_arguments
from trustbench.user_model import load_user_checkpoint

log = logging.getLogger("trustbench")


@dataclass
class FittedRun:
    """A run's fitted method with the data it was fitted on: what every evaluation suite reads."""

    module: TrustModule
    datamodule: TensorDataModule
    dataset: ArrayDataset
    loggers: list[Any]
    step: int
    posthoc_metrics: dict[str, float]


def train_and_evaluate(cfg: DictConfig, run_dir: Path) -> dict[str, float] | None:
    """Fit the configured method and return its evaluation metrics (None on ranks other than 0)."""
    cfg = for_task(cfg)
    fitted = fit(cfg, run_dir)
    if fitted is None:
        return None
    context = EvaluationContext(cfg, fitted.module, fitted.datamodule, fitted.dataset, run_dir)
    metrics = evaluate(cfg.method.evaluation, context)
    for suite in cfg.data.get("suites", []):
        metrics |= evaluate(suite, context)
    metrics.update(fitted.posthoc_metrics)
    log_final_metrics(cfg, fitted, metrics)
    return metrics


def fit(cfg: DictConfig, run_dir: Path, use_store: bool = False) -> FittedRun | None:
    """Build data and model, then train (or reuse stored weights) and fit post-hoc parts.

    Post-hoc methods, and any method when `use_store` is set (the audit), take the model store's weights
    for their training recipe when it holds them. Returns None on DDP ranks other than 0, which only help
    to train.
    """
    use_store = use_store or bool(cfg.method.get("posthoc"))
    check_choices(cfg)
    torch.set_num_threads(cfg.threads)  # pinned: the thread count changes the weights (see config.yaml)
    checkpoint = prepare_run_dir(run_dir, cfg) if is_rank_zero() else last_checkpoint(run_dir)
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    dataset = load_configured(cfg.data, cfg.paths.data_dir, cfg.seed)
    check_dataset(cfg, dataset)
    normalize = cfg.data.get("normalize")
    datamodule = TensorDataModule(
        dataset,
        val_size=cfg.data.val_size,
        batch_size=cfg.data.batch_size,
        seed=cfg.seed,
        normalize=(normalize.mean, normalize.std) if normalize else None,
        augment=cfg.data.get("augment"),
        protected=cfg.data.get("protected") if cfg.method.get("needs_groups") else None,
        annotated=bool(cfg.method.get("needs_annotations") or cfg.method.get("needs_concepts")),
    )
    outputs = head_outputs(cfg, dataset)
    backbone = instantiate(cfg.backbone.net, input_shape=dataset.input_shape, num_classes=outputs)
    module = build_module(cfg, backbone, outputs, dataset)
    loggers = [instantiate(logger_cfg) for logger_cfg in cfg.logger.values()]

    # Concurrent jobs of one recipe take turns, so it is trained once (DDP workers follow their rank 0).
    uses_the_store = use_store and not cfg.method.get("checkpoint") and is_rank_zero()
    with recipe_lock(cfg) if uses_the_store else nullcontext():
        trained = _trained_weights(cfg, use_store)
        if trained is not None:
            log.info("reusing the trained classifier %s (post-hoc methods never retrain)", trained)
            if cfg.method.get("checkpoint"):  # the user's own model: TorchScript, a state dict or our .ckpt
                load_user_checkpoint(module, trained, dataset.input_shape, dataset.num_classes)
            else:
                load_weights(module, trained)
            step = 0
        else:
            trainer = train(cfg, module, datamodule, loggers, run_dir, checkpoint)
            if not trainer.is_global_zero:
                return None
            module.to(trainer.strategy.root_device)
            if use_store or cfg.method.get("store_weights"):  # where post-hoc methods will look for it
                save_weights(module, stored_model_path(cfg))
            step = trainer.global_step
    posthoc = module.fit_posthoc(datamodule)
    return FittedRun(module, datamodule, dataset, loggers, step, posthoc)


def train(
    cfg: DictConfig,
    module: TrustModule,
    datamodule: TensorDataModule,
    loggers: list[Any],
    run_dir: Path,
    checkpoint: Path | None,
) -> pl.Trainer:
    """Train `module` with the configured Trainer, resuming from `checkpoint` if given.

    A resumable checkpoint is saved at every epoch end by EpochEndCheckpoint, which takes the place of
    Lightning's default ModelCheckpoint (that one would write a second copy of the weights under the
    logger's directory).
    """
    if checkpoint is not None and is_rank_zero():
        continue_csv_logs(loggers, checkpoint)
    log_config(loggers, cfg)
    checkpointing = EpochEndCheckpoint(run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    trainer = build_trainer(
        cfg,
        logger=loggers,
        callbacks=[KeepEpochRow(), checkpointing],  # the row is kept before the checkpoint is saved
        default_root_dir=str(run_dir),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)
    return trainer


def log_final_metrics(cfg: DictConfig, fitted: FittedRun, metrics: dict[str, float]) -> None:
    """Send the evaluation metrics to every logger and print them."""
    log_final(fitted.loggers, metrics, fitted.step)
    print_metrics(
        metrics, title=f"{cfg.data.name} · {cfg.backbone.name} · {cfg.method.name} · seed {cfg.seed}"
    )


def _trained_weights(cfg: DictConfig, use_store: bool) -> Path | None:
    """Weights to start from instead of training: `method.checkpoint` if given, else (`use_store`) the
    model store's classifier for this training recipe, if it was trained before."""
    if cfg.method.get("checkpoint"):
        path = Path(cfg.method.checkpoint)
        if not path.is_file():
            raise ConfigError(f"method.checkpoint={path} does not exist; give a .ckpt or weights file")
        return path
    if use_store:
        return stored_model(cfg)  # None when absent or damaged (then trained again, with a warning)
    return None


def build_trainer(cfg: DictConfig, **arguments: object) -> pl.Trainer:
    """The configured Lightning Trainer; `arguments` add what the config cannot hold (loggers, callbacks)."""
    return instantiate(cfg.trainer, **arguments)


def build_module(
    cfg: DictConfig, backbone: torch.nn.Module, num_classes: int, dataset: ArrayDataset | None = None
) -> TrustModule:
    """The configured method's LightningModule around `backbone`, with its optimiser recipe.

    A module that generates inputs (VCNet decodes counterfactuals) declares constructor parameters
    `input_shape` and `categorical_groups`; they are filled from `dataset`, which configs cannot know.
    """
    scheduler = instantiate(cfg.method.scheduler) if cfg.method.get("scheduler") else None
    wanted = inspect.signature(get_class(cfg.method.module._target_)).parameters
    data_arguments = {}
    if dataset is not None and "input_shape" in wanted:
        data_arguments["input_shape"] = dataset.input_shape
    if dataset is not None and dataset.tabular is not None and "categorical_groups" in wanted:
        data_arguments["categorical_groups"] = dataset.tabular.categorical_groups
    if dataset is not None:  # a regression module's target range and scale (CaR's bins)
        data_arguments |= regression_arguments(dataset, set(wanted))
    return instantiate(
        cfg.method.module,
        backbone=backbone,
        num_classes=num_classes,
        optimizer=instantiate(cfg.method.optimizer),
        scheduler=scheduler,
        **data_arguments,
    )
