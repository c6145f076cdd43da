"""Where in a backbone explanation methods look: the last convolution layer (Grad-CAM's layer)."""

from __future__ import annotations

from torch import nn

from trustbench.errors import ConfigError


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The last ``nn.Conv2d`` of `model` in registration order (forward order for our backbones)."""
    convs = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise ConfigError(
            f"{type(model).__name__} has no convolution layer; Grad-CAM needs an image backbone (lenet, cnn)"
        )
    return convs[-1]
