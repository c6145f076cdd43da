"""Every config composes, and each group choice lands where the runner expects it."""

from __future__ import annotations

import functools

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from trustbench.app import CONFIG_DIR
from trustbench.cli import config_choices
from trustbench.data.class_subset import UNKNOWN_SET
from trustbench.data.names import DATASETS, REGRESSION_DATASETS
from trustbench.schema import validate


@functools.cache
def compose_config(*overrides: str, hydra: bool = False) -> DictConfig:
    """The composed config, read-only, composed once per test process: several tests read the same
    composition (each method's and data config's is checked by three and two tests), and a compose costs
    about 0.25 s of CPU."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=hydra)
    OmegaConf.set_readonly(cfg, True)
    return cfg


def test_defaults_are_mnist_lenet_erm_on_cpu_with_csv() -> None:
    cfg = compose_config()
    assert (cfg.data.name, cfg.backbone.name, cfg.method.name) == ("mnist", "lenet", "erm")
    assert cfg.trainer.accelerator == "cpu" and list(cfg.logger) == ["csv"]


@pytest.mark.parametrize("name", config_choices("data"))
def test_every_data_config_names_a_catalog_dataset_and_its_ood_sets(name: str) -> None:
    """A data config reads a catalog dataset by its name (a regression set declares its task), or the user's
    own file (it declares `path` and, since the catalog cannot tell, the data `kind`). A class split
    (osr_mnist, novelty_mnist: `class_splits`) names the dataset it splits, and its held-out classes are the
    OOD set `unknown`."""
    data = compose_config(f"data={name}").data
    split = "class_splits" in data
    assert data.name == name or (split and data.name in DATASETS)
    regression = data.get("task") == "regression" and data.name in REGRESSION_DATASETS
    user_file = "path" in data.keys() and data.kind in ("image", "tabular")
    assert data.name in DATASETS or regression or user_file
    assert all(ood in DATASETS or (split and ood == UNKNOWN_SET) for ood in data.ood)


@pytest.mark.parametrize(
    ("group", "name"),
    [(g, n) for g in ("data", "method", "trainer", "experiment") for n in config_choices(g)],
)
def test_every_shipped_config_passes_the_value_schema(group: str, name: str) -> None:
    validate(compose_config(f"{group}={name}"))


@pytest.mark.parametrize("name", config_choices("backbone"))
def test_every_backbone_config_points_to_a_backbone_class(name: str) -> None:
    backbone = compose_config(f"backbone={name}").backbone
    assert backbone.name == name
    assert get_class(backbone.net._target_).input_kind in ("image", "vector")


@pytest.mark.parametrize("name", config_choices("method"))
def test_every_method_config_has_module_optimizer_and_evaluation(name: str) -> None:
    """... and no checkpoint by default (tests/test_method_checkpoint_key.py overrides it)."""
    method = compose_config(f"method={name}").method
    assert method.name == name
    get_class(method.module._target_)
    assert method.optimizer._partial_ and method.evaluation
    assert method.checkpoint is None


def test_gpu_and_ddp_trainers_differ_from_cpu_only_where_they_must() -> None:
    gpu = compose_config("trainer=gpu").trainer
    ddp = compose_config("trainer=ddp").trainer
    assert (gpu.accelerator, gpu.precision) == ("gpu", "bf16-mixed")
    assert (ddp.strategy, ddp.devices, ddp.sync_batchnorm) == ("ddp", 2, True)
    assert gpu.use_distributed_sampler is False and ddp.use_distributed_sampler is False


def test_wandb_and_many_loggers_keep_csv() -> None:
    assert list(compose_config("logger=wandb").logger) == ["csv", "wandb"]
    assert list(compose_config("logger=many").logger) == ["csv", "wandb", "tensorboard"]


def test_parallel_launcher_is_joblib_with_two_workers() -> None:
    launcher = compose_config("launcher=local_parallel", hydra=True).hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.n_jobs == 2


def test_slurm_launcher_is_submitit_on_gpu() -> None:
    cfg = compose_config("launcher=slurm", hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.trainer.accelerator == "gpu"


def test_optuna_example_searches_learning_rate_on_validation_accuracy() -> None:
    cfg = compose_config("sweep=optuna_lr", hydra=True)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.optimized_metric == "val/acc"
    assert "method.optimizer.lr" in cfg.hydra.sweeper.params
