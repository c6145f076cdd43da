"""What the config checks need to know about a backbone class, without importing it (and so torch).

`trustbench.config.check_choices` refuses impossible combinations (a convolutional backbone on tabular
rows, a method that needs features on a backbone without them, per-pixel outputs on per-input targets)
before any heavy import, so a wrong override fails in under a second. For the shipped backbones it reads
their facts from :data:`SHIPPED`, which a test keeps equal to the classes' own attributes; a backbone of
the user's (any other ``backbone.net._target_``) is imported and its attributes read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hydra.utils import get_class


@dataclass(frozen=True)
class BackboneFacts:
    """A backbone class's `input_kind`, whether it has a feature layer, and whether it outputs per pixel."""

    input_kind: Literal["image", "vector"]
    has_features: bool = True
    dense_output: bool = False


_IMAGE = BackboneFacts("image")
SHIPPED: dict[str, BackboneFacts] = {
    "trustbench.backbones.cnn.CNN": _IMAGE,
    "trustbench.backbones.lenet.LeNet": _IMAGE,
    "trustbench.backbones.resnet.ResNet18": _IMAGE,
    "trustbench.backbones.spectral.SpectralResNet18": _IMAGE,
    "trustbench.backbones.wide_resnet.WideResNet": _IMAGE,
    "trustbench.backbones.spectral.SpectralWideResNet": _IMAGE,
    "trustbench.backbones.one_class.OneClassLeNet": _IMAGE,
    "trustbench.backbones.encoder_decoder.EncoderDecoder": BackboneFacts("image", dense_output=True),
    "trustbench.backbones.mlp.MLP": BackboneFacts("vector"),
    "trustbench.backbones.linear.Linear": BackboneFacts("vector", has_features=False),
}


def backbone_facts(target: str) -> BackboneFacts:
    """The facts of the backbone class `target` (a ``_target_`` path): from :data:`SHIPPED`, else read
    from the imported class."""
    if target in SHIPPED:
        return SHIPPED[target]
    return facts_of_class(get_class(target))


def facts_of_class(backbone_cls: type) -> BackboneFacts:
    """The facts as the class itself declares them (a class-level ``feature_dim = None``: no features)."""
    return BackboneFacts(
        input_kind=backbone_cls.input_kind,
        has_features=getattr(backbone_cls, "feature_dim", 0) is not None,
        dense_output=bool(getattr(backbone_cls, "dense_output", False)),
    )
