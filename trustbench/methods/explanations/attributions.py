"""Post-hoc attribution methods, each a thin wrapper around captum, and the registry that builds them.

Every method maps (model, inputs x of shape N×*shape, target classes N) to an attribution of x's shape,
in model-input space: how much each input feature (pixel channel, encoded column) counts for the target
logit. :func:`relevance_map` then reduces it to one number per pixel (channels summed) or per column, the
map every ``xai/`` metric reads. Captum (https://captum.ai) implements each method; what is ours is the
choice of settings, written in each class's docstring with the paper it follows and where we depart.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from captum.attr import (
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from trustbench.errors import ConfigError
from trustbench.methods.explanations.layers import last_conv

ATTRIBUTIONS: dict[str, type[Attribution]] = {}


class Attribution(ABC):
    """One attribution method. Subclasses set `name` (the config name, which registers them) and
    `data_kinds` (the data it suits); hyperparameters are constructor arguments, set from
    ``method.attribution.hparams``.

    `baseline` is the "absent feature" value in model-input space (N or 1 × *shape): the normalised black
    image for images, the training mean row for tables. Methods that need no reference ignore it.
    `feature_groups` (tables) gives each encoded column the index of its feature, so a one-hot category is
    switched on and off as one feature by perturbation methods.
    """

    name: ClassVar[str]
    data_kinds: ClassVar[tuple[str, ...]] = ("image", "tabular")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in ATTRIBUTIONS:
                raise ValueError(f"Two attribution methods are named {cls.name!r}")
            ATTRIBUTIONS[cls.name] = cls

    @abstractmethod
    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        """The attribution of every input feature of `x` for the `target` logits (x's shape)."""


class SaliencyMap(Attribution):
    """Simonyan, Vedaldi & Zisserman (ICLR-W 2014): |∂ logit_target / ∂x|, the gradient's magnitude."""

    name = "saliency"

    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        return Saliency(model).attribute(x, target=target, abs=True)


class GradientTimesInput(Attribution):
    """Shrikumar et al. (2016, "Not just a black box"): x ⊙ ∂ logit_target / ∂x, signed.

    Departs from the reference in one respect: x is the model-space input, so on normalised data a
    feature at the data mean gets 0, not a black pixel.
    """

    name = "gradient_x_input"

    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        return InputXGradient(model).attribute(x, target=target)


class IntegratedGradientsMap(Attribution):
    """Sundararajan, Taly & Yan (ICML 2017): (x − x̄) ⊙ ∫₀¹ ∇f(x̄ + α(x − x̄)) dα, signed, with the
    Gauss-Legendre rule of `steps` points (captum's default) and the black image / mean row as x̄."""

    name = "integrated_gradients"

    def __init__(self, steps: int = 32) -> None:
        self.steps = steps

    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        return IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=self.steps)


class SmoothGrad(Attribution):
    """Smilkov et al. (2017): the mean |∂ logit_target / ∂x| over `samples` copies of x with Gaussian noise.

    `noise` is the noise's standard deviation as a share of the inputs' value range (the paper's
    σ / (x_max − x_min), 0.15 by default as their figures recommend); the range is the explained batch's,
    not each image's, as captum takes one σ per input tensor. We average the absolute gradient (their
    reference shows both absolute and signed maps).
    """

    name = "smoothgrad"

    def __init__(self, samples: int = 16, noise: float = 0.15) -> None:
        self.samples, self.noise = samples, noise

    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        stdev = self.noise * max(float(x.max() - x.min()), 1e-8)
        tunnel = NoiseTunnel(Saliency(model))
        return tunnel.attribute(
            x, nt_type="smoothgrad", nt_samples=self.samples, stdevs=stdev, target=target, abs=True
        )


class GradCam(Attribution):
    """Selvaraju et al. (ICCV 2017): ReLU(Σ_k α_k A_k) on the last convolution layer, α_k the spatial
    mean of ∂ logit_target / ∂A_k, upsampled bilinearly to the input size and given to every channel.

    The layer is the backbone's last ``nn.Conv2d`` (LeNet's second conv, 10×10 on MNIST; the CNN's
    third). The paper takes the last conv block's output after its ReLU; before the ReLU and pooling the
    map is finer and, for ReLU networks, differs only where a unit is inactive.
    """

    name = "grad_cam"
    data_kinds = ("image",)

    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        cam = LayerGradCam(model, last_conv(model)).attribute(x, target=target, relu_attributions=True)
        upsampled = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        return upsampled.expand_as(x).contiguous()


class OcclusionMap(Attribution):
    """Zeiler & Fergus (ECCV 2014): the drop of the target logit when a `window`-sided square (images,
    every channel at once, moved by `stride`) or one feature (tables) is set to its baseline value;
    each pixel gets the mean drop over the windows covering it (captum's averaging)."""

    name = "occlusion"

    def __init__(self, window: int = 4, stride: int = 2) -> None:
        self.window, self.stride = window, stride

    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        if x.ndim == 2:
            return _occlude_features(model, x, target, baseline, feature_groups)
        channels = x.shape[1]
        return Occlusion(model).attribute(
            x,
            sliding_window_shapes=(channels, self.window, self.window),
            strides=(channels, self.stride, self.stride),
            baselines=baseline[:1].expand_as(x) if baseline.shape[0] == 1 else baseline,
            target=target,
            perturbations_per_eval=64,
        )


class KernelShapMap(Attribution):
    """Lundberg & Lee (NeurIPS 2017): Shapley values estimated by a weighted linear regression on
    `samples` coalitions, an absent feature taking its training mean (one reference point, where the
    paper averages over a background set). A one-hot category is one player."""

    name = "kernel_shap"
    data_kinds = ("tabular",)

    def __init__(self, samples: int = 200) -> None:
        self.samples = samples

    def attribute(
        self, model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
    ) -> Tensor:
        rows = [
            KernelShap(model).attribute(
                x[i : i + 1],
                target=target[i : i + 1],
                baselines=baseline[:1],
                feature_mask=None if feature_groups is None else feature_groups.unsqueeze(0),
                n_samples=self.samples,
                perturbations_per_eval=self.samples,
            )
            for i in range(len(x))
        ]
        return torch.cat(rows)


def _occlude_features(
    model: nn.Module, x: Tensor, target: Tensor, baseline: Tensor, feature_groups: Tensor | None
) -> Tensor:
    """Occlusion of table rows, one feature (a whole one-hot group) at a time: captum's sliding window
    would cut across groups, so the features are switched off here."""
    groups = feature_groups if feature_groups is not None else torch.arange(x.shape[1])
    with torch.no_grad():
        reference = model(x).gather(1, target[:, None]).squeeze(1)
        drops = torch.zeros_like(x)
        for feature in groups.unique():
            columns = groups == feature
            occluded = x.clone()
            occluded[:, columns] = baseline[:, columns].expand(len(x), -1)
            drop = reference - model(occluded).gather(1, target[:, None]).squeeze(1)
            drops[:, columns] = drop[:, None]
    return drops


def relevance_map(attribution: Tensor) -> Tensor:
    """One relevance per pixel (images N×C×H×W → N×H×W, channels summed) or per column (tables: as is)."""
    return attribution.sum(dim=1) if attribution.ndim == 4 else attribution


def build(name: str, **hparams: Any) -> Attribution:
    """The attribution method registered as `name`, with `hparams`; a wrong name or key lists the valid."""
    if name not in ATTRIBUTIONS:
        valid = ", ".join(sorted(ATTRIBUTIONS))
        raise ConfigError(f"Unknown attribution method {name!r}; valid names: {valid}")
    cls = ATTRIBUTIONS[name]
    allowed = list(inspect.signature(cls.__init__).parameters)[1:] if "__init__" in cls.__dict__ else []
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ConfigError(
            f"attribution method {name!r} has no hyperparameter {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    return cls(**hparams)
