"""Backbones: shapes, the features/head split, input checks, parameter counts and config files.

Every backbone is built from its config file in configs/backbone, the way the runner builds it. The
full WRN-28-10 (36M parameters) is built once per module; other WRN tests use a WRN-10-1. Tests of
constructor errors call the classes directly, since hydra wraps any error in an InstantiationException.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.backbones.cnn import CNN
from trustbench.backbones.encoder_decoder import EncoderDecoder
from trustbench.backbones.facts import SHIPPED, facts_of_class
from trustbench.backbones.lenet import LeNet
from trustbench.backbones.linear import Linear
from trustbench.backbones.mlp import MLP
from trustbench.backbones.one_class import OneClassLeNet
from trustbench.backbones.resnet import ResNet18
from trustbench.backbones.spectral import SpectralResNet18, SpectralWideResNet
from trustbench.backbones.wide_resnet import WideResNet

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "backbone"
MNIST, CIFAR, TABULAR = (1, 28, 28), (3, 32, 32), (12,)
NUM_CLASSES = 10
BATCH = 2

CLASSES = {
    "mlp": MLP,
    "linear": Linear,
    "cnn": CNN,
    "lenet": LeNet,
    "resnet18": ResNet18,
    "wrn28_10": WideResNet,
    "resnet18_sn": SpectralResNet18,
    "wrn28_10_sn": SpectralWideResNet,
    "encoder_decoder": EncoderDecoder,
    "one_class_lenet": OneClassLeNet,
    "one_class_autoencoder": OneClassLeNet,
}
IMAGE_CONFIGS = ["cnn", "lenet", "resnet18", "wrn28_10"]
VECTOR_CONFIGS = ["mlp", "linear"]
SUPPORTED = [(name, shape) for name in IMAGE_CONFIGS for shape in (MNIST, CIFAR)] + [
    (name, shape) for name in VECTOR_CONFIGS for shape in (MNIST, CIFAR, TABULAR)
]
SMALL_OVERRIDES = {"wrn28_10": {"depth": 10, "widen_factor": 1}}
SMALL_FEATURE_DIMS = {"mlp": 256, "cnn": 256, "lenet": 84, "resnet18": 512, "wrn28_10": 64}


def build(name: str, input_shape: tuple[int, ...], **overrides: object) -> Backbone:
    cfg = OmegaConf.load(CONFIG_DIR / f"{name}.yaml")
    return instantiate(cfg.net, input_shape=input_shape, num_classes=NUM_CLASSES, **overrides)


def build_small(name: str, input_shape: tuple[int, ...]) -> Backbone:
    return build(name, input_shape, **SMALL_OVERRIDES.get(name, {}))


def batch(input_shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randn(BATCH, *input_shape, generator=torch.Generator().manual_seed(0))


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.fixture(scope="module")
def wrn28_10() -> Backbone:
    return build("wrn28_10", CIFAR)


def test_config_directory_holds_exactly_the_known_backbones() -> None:
    assert {path.stem for path in CONFIG_DIR.glob("*.yaml")} == set(CLASSES)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_config_starts_with_a_description_and_names_itself(name: str) -> None:
    text = (CONFIG_DIR / f"{name}.yaml").read_text()
    assert text.startswith("# ") and len(text.splitlines()[0]) > 10
    assert OmegaConf.load(CONFIG_DIR / f"{name}.yaml").name == name


@pytest.mark.parametrize("name", sorted(set(CLASSES) - {"wrn28_10"}))
def test_config_instantiates_its_backbone_class(name: str) -> None:
    shape = TABULAR if name in VECTOR_CONFIGS else CIFAR
    assert type(build(name, shape)) is CLASSES[name]


def test_wrn28_10_config_builds_the_papers_network(wrn28_10: Backbone) -> None:
    assert type(wrn28_10) is WideResNet
    assert wrn28_10.feature_dim == 640
    assert sum(isinstance(module, nn.Dropout) and module.p == 0.3 for module in wrn28_10.modules()) == 12


@pytest.mark.parametrize(("name", "input_shape"), SUPPORTED)
def test_logits_have_one_column_per_class(name: str, input_shape: tuple[int, ...]) -> None:
    model = build_small(name, input_shape)
    assert model(batch(input_shape)).shape == (BATCH, NUM_CLASSES)


@pytest.mark.parametrize(("name", "input_shape"), [case for case in SUPPORTED if case[0] != "linear"])
def test_features_have_feature_dim_columns(name: str, input_shape: tuple[int, ...]) -> None:
    model = build_small(name, input_shape)
    assert model.feature_dim == SMALL_FEATURE_DIMS[name]
    assert model.features(batch(input_shape)).shape == (BATCH, model.feature_dim)


@pytest.mark.parametrize(("name", "input_shape"), [case for case in SUPPORTED if case[0] != "linear"])
def test_forward_is_head_of_features(name: str, input_shape: tuple[int, ...]) -> None:
    model = build_small(name, input_shape).eval()
    x = batch(input_shape)
    torch.testing.assert_close(model(x), model.head(model.features(x)))


@pytest.mark.parametrize("name", IMAGE_CONFIGS)
def test_image_backbones_reject_tabular_shapes_naming_themselves(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{CLASSES[name].__name__} needs image inputs .*\(12,\)") as error:
        CLASSES[name](TABULAR, NUM_CLASSES)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("backbone", "min_side"), [(CNN, 16), (LeNet, 12)])
def test_downsampling_backbones_accept_their_stated_minimum_side_and_nothing_smaller(
    backbone: type[Backbone], min_side: int
) -> None:
    assert backbone((1, min_side, min_side), NUM_CLASSES)(batch((1, min_side, min_side))).shape == (
        BATCH,
        NUM_CLASSES,
    )
    with pytest.raises(ValueError, match=rf"H, W >= {min_side}; got input_shape \(1, {min_side - 1}, 28\)"):
        backbone((1, min_side - 1, 28), NUM_CLASSES)


@pytest.mark.parametrize("name", ["resnet18", "wrn28_10"])
def test_globally_pooled_backbones_accept_8x8_images(name: str) -> None:
    tiny = (3, 8, 8)
    assert build_small(name, tiny)(batch(tiny)).shape == (BATCH, NUM_CLASSES)


def test_linear_declares_no_feature_layer_before_it_is_built() -> None:
    assert Linear.feature_dim is None


def test_linear_has_no_feature_layer() -> None:
    model = build("linear", TABULAR)
    assert model.feature_dim is None
    with pytest.raises(NotImplementedError, match="no feature layer"):
        model.features(batch(TABULAR))


def test_linear_forward_is_an_affine_map_of_the_flattened_input() -> None:
    model = build("linear", MNIST)
    x = batch(MNIST)
    expected = x.reshape(BATCH, 784) @ model.head.weight.T + model.head.bias
    torch.testing.assert_close(model(x), expected)


def test_mlp_features_are_the_last_hidden_layer() -> None:
    model = build("mlp", TABULAR, hidden_sizes=[32, 16], dropout=0.25)
    assert model.feature_dim == 16
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [32, 16, NUM_CLASSES]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.25]


def test_mlp_without_hidden_layers_points_to_linear() -> None:
    with pytest.raises(ValueError, match="use the linear backbone"):
        MLP(TABULAR, NUM_CLASSES, hidden_sizes=[])


def test_cnn_features_are_the_relu_embedding() -> None:
    assert (build("cnn", MNIST).features(batch(MNIST)) >= 0).all()


def test_cnn_dropout_samples_features_in_train_mode_only() -> None:
    model = build("cnn", MNIST, dropout=0.5)
    x = batch(MNIST)
    assert not torch.equal(model.features(x), model.features(x))
    model.eval()
    torch.testing.assert_close(model.features(x), model.features(x))


def test_wide_resnet_rejects_depth_not_of_form_6n_plus_4() -> None:
    with pytest.raises(ValueError, match="6n \\+ 4.*depth=27"):
        WideResNet(CIFAR, NUM_CLASSES, depth=27)


@pytest.mark.parametrize(
    ("name", "input_shape", "expected"),
    [
        # DUQ CNN on 1×28×28 (the third conv is unpadded, so the last map is 2×2):
        # conv1 1·64·9+64 = 640, bn1 2·64 = 128, conv2 64·128·9+128 = 73,856, bn2 256,
        # conv3 128·128·9+128 = 147,584, bn3 256, fc 2·2·128·256+256 = 131,328, head 256·10+10 = 2,570.
        ("cnn", MNIST, 356_618),
        # LeNet-5 on 1×28×28 (padded to act as 32×32): conv1 1·6·25+6 = 156, conv2 6·16·25+16 = 2,416,
        # fc1 16·5·5·120+120 = 48,120, fc2 120·84+84 = 10,164, head 84·10+10 = 850.
        ("lenet", MNIST, 61_706),
        # The CIFAR ResNet-18 figure of github.com/kuangliu/pytorch-cifar, re-derived by hand:
        # stem 1,728+128; stage1 2·73,984; stage2 230,144+295,424; stage3 919,040+1,180,672;
        # stage4 3,673,088+4,720,640; head 5,130.
        ("resnet18", CIFAR, 11_173_962),
    ],
)
def test_parameter_count_matches_reference(name: str, input_shape: tuple[int, ...], expected: int) -> None:
    assert parameter_count(build(name, input_shape)) == expected


def test_a_narrower_resnet18_keeps_the_architecture() -> None:
    """ResNet-18 of first-stage width w has 2724·w² + 257·w + 10 weights on CIFAR-10 (by hand, stage by
    stage: stem 27w+2w; stage1 36w²+8w; stage2 56w²+12w, 72w²+8w; stage3 224w²+24w, 288w²+16w; stage4
    896w²+48w, 1152w²+32w; head 80w+10): w = 64 gives the reference's 11,173,962."""
    assert 2724 * 64**2 + 257 * 64 + 10 == 11_173_962
    narrow = ResNet18(CIFAR, NUM_CLASSES, base_width=8)
    assert parameter_count(narrow) == 2724 * 8**2 + 257 * 8 + 10 == 176_402
    assert narrow.feature_dim == 64 and narrow(batch(CIFAR)).shape == (BATCH, NUM_CLASSES)
    with pytest.raises(ValueError, match="base_width >= 1"):
        ResNet18(CIFAR, NUM_CLASSES, base_width=0)


def test_wrn28_10_parameter_count_matches_reference(wrn28_10: Backbone) -> None:
    # Bias-free convs as in the authors' code: stem 432; group1 256,352+3·461,440;
    # group2 1,434,560+3·1,844,480; group3 5,736,320+3·7,375,360; final bn 1,280; head 6,410.
    assert parameter_count(wrn28_10) == 36_479_194


def assert_every_parameter_gets_a_gradient(model: nn.Module, input_shape: tuple[int, ...]) -> None:
    labels = torch.arange(BATCH) % NUM_CLASSES
    F.cross_entropy(model(batch(input_shape)), labels).backward()
    starved = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert starved == []


@pytest.mark.parametrize(
    ("name", "input_shape"),
    [("mlp", TABULAR), ("linear", TABULAR), ("cnn", MNIST), ("lenet", MNIST), ("resnet18", CIFAR)],
)
def test_one_backward_pass_reaches_every_parameter(name: str, input_shape: tuple[int, ...]) -> None:
    assert_every_parameter_gets_a_gradient(build(name, input_shape), input_shape)


def test_one_backward_pass_reaches_every_wrn28_10_parameter(wrn28_10: Backbone) -> None:
    assert_every_parameter_gets_a_gradient(wrn28_10, CIFAR)


@pytest.mark.parametrize("target", sorted(SHIPPED))
def test_shipped_facts_are_the_classes_own(target: str) -> None:
    """The config checks read these instead of importing the class: they must not drift from it."""
    assert SHIPPED[target] == facts_of_class(get_class(target))


@pytest.mark.parametrize("name", sorted(path.stem for path in CONFIG_DIR.glob("*.yaml")))
def test_every_backbone_config_has_its_facts_known_without_import(name: str) -> None:
    assert OmegaConf.load(CONFIG_DIR / f"{name}.yaml").net._target_ in SHIPPED
