"""MC dropout on any backbone: every backbone takes a dropout rate, method=mc_dropout sets one in the recipe.

Issue 10 item 7: `trustbench run method=mc_dropout` failed on the default LeNet, which had no dropout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import result, trustbench
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from trustbench.config import check_choices
from trustbench.errors import ConfigError
from trustbench.experiment import build_module
from trustbench.methods.uncertainty.mc_dropout import DROPOUT_LAYERS, MCDropout, dropout_sampling
from trustbench.results.record import CONFIG_FILE

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
BACKBONES = sorted(path.stem for path in (CONFIG_DIR / "backbone").glob("*.yaml"))
IMAGE, TABULAR = (1, 16, 16), (12,)
NUM_CLASSES = 3
# A WRN-10-1 stands in for WRN-28-10 (36M parameters); its dropout sits in the same place.
SMALL = {"wrn28_10": {"depth": 10, "widen_factor": 1}, "wrn28_10_sn": {"depth": 10, "widen_factor": 1}}
MC_DROPOUT_RATE = 0.1  # configs/method/base/backbone_dropout.yaml


def composed(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def input_shape(cfg: DictConfig) -> tuple[int, ...]:
    return TABULAR if get_class(cfg.backbone.net._target_).input_kind == "vector" else IMAGE


@pytest.mark.parametrize("name", BACKBONES)
def test_mc_dropout_sets_its_rate_on_every_backbone_in_the_stored_recipe(name: str) -> None:
    cfg = composed("method=mc_dropout", f"backbone={name}")
    assert cfg.backbone.net.dropout == MC_DROPOUT_RATE
    assert composed("method=erm", f"backbone={name}").backbone.net.dropout in (0.0, 0.3)  # wrn: the paper's


def test_a_tabular_datas_default_mlp_gets_the_mc_dropout_rate() -> None:
    cfg = composed("method=mc_dropout", "data=german")
    assert (cfg.backbone.name, cfg.backbone.net.dropout) == ("mlp", MC_DROPOUT_RATE)


def test_an_explicit_dropout_rate_overrides_the_methods() -> None:
    assert composed("method=mc_dropout", "backbone.net.dropout=0.25").backbone.net.dropout == 0.25


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_samples_dropout_in_mc_mode_only(name: str) -> None:
    cfg = composed("method=mc_dropout", f"backbone={name}", "backbone.net.dropout=0.5")
    torch.manual_seed(0)
    model = instantiate(
        cfg.backbone.net, input_shape=input_shape(cfg), num_classes=NUM_CLASSES, **SMALL.get(name, {})
    )
    assert any(isinstance(m, DROPOUT_LAYERS) and m.p == 0.5 for m in model.modules())
    model.eval()
    x = torch.rand(4, *input_shape(cfg))
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        with dropout_sampling(model):
            first, second = model(x), model(x)
    assert not torch.allclose(first, second)
    assert not any(m.training for m in model.modules())  # modes restored after sampling


@pytest.mark.parametrize("name", BACKBONES)
def test_dropout_zero_leaves_every_backbone_deterministic_in_train_mode(name: str) -> None:
    cfg = composed(f"backbone={name}", "backbone.net.dropout=0.0")
    torch.manual_seed(0)
    model = instantiate(
        cfg.backbone.net, input_shape=input_shape(cfg), num_classes=NUM_CLASSES, **SMALL.get(name, {})
    )
    model.eval()
    x = torch.rand(4, *input_shape(cfg))
    with torch.no_grad(), dropout_sampling(model):
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("rate", ["0", "0.0"])
def test_mc_dropout_refuses_a_rate_outside_zero_one_at_the_config_check(rate: str) -> None:
    cfg = composed("method=mc_dropout", "data=synthetic_image", f"backbone.net.dropout={rate}")
    with pytest.raises(ConfigError) as error:
        check_choices(cfg)
    message = str(error.value)
    assert "\n" not in message
    assert f"method 'mc_dropout' samples dropout at test time, but backbone.net.dropout={rate}" in message
    assert "0 < backbone.net.dropout < 1" in message


def test_a_dropout_rate_of_one_is_refused_for_every_method() -> None:
    """A rate of 1 zeroes every unit: the value check refuses it before the method's own check."""
    cfg = composed("method=mc_dropout", "data=synthetic_image", "backbone.net.dropout=1.0")
    with pytest.raises(
        ConfigError,
        match=r"^backbone.net.dropout=1.0 is not allowed: backbone.net.dropout "
        r"takes a number >= 0 and < 1$",
    ):
        check_choices(cfg)


def test_mc_dropout_predictions_vary_between_samples_on_the_default_lenet() -> None:
    cfg = composed("method=mc_dropout", "data=synthetic_image")
    assert cfg.backbone.name == "lenet"
    torch.manual_seed(0)
    backbone = instantiate(cfg.backbone.net, input_shape=(1, 12, 12), num_classes=NUM_CLASSES)
    module = build_module(cfg, backbone, NUM_CLASSES)
    assert isinstance(module, MCDropout)
    module.eval()
    with torch.no_grad():
        samples = module.sample_probs(torch.rand(5, 1, 12, 12))
    assert samples.shape == (cfg.method.module.num_samples, 5, NUM_CLASSES)
    assert (samples.std(dim=0) > 0).all()  # every row's prediction differs between passes
    torch.testing.assert_close(samples.sum(dim=2), torch.ones(samples.shape[:2]))


def test_mc_dropout_runs_end_to_end_on_the_default_lenet(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    trustbench(
        "run",
        "method=mc_dropout",
        "data=synthetic_image",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "method.module.num_samples=3",
        f"hydra.run.dir={run_dir}",
    )
    record = result(run_dir)
    assert record["status"] == "ok"
    assert {"cls/acc", "cls/nll", "cal/ece"} <= set(record["metrics"])
    stored = OmegaConf.load(run_dir / CONFIG_FILE)
    assert (stored.backbone.name, stored.backbone.net.dropout) == ("lenet", MC_DROPOUT_RATE)
