"""Soft spectral normalisation of a backbone's layers, and the spectrally normalised residual backbones.

Sources: the power iteration of Miyato, Kataoka, Koyama & Yoshida, "Spectral Normalization for Generative
Adversarial Networks", ICLR 2018 (as in `torch.nn.utils.parametrizations.spectral_norm`), with the soft
bound of Behrmann et al., "Invertible Residual Networks", ICML 2019, that DDU (Mukhoti et al., "Deep
Deterministic Uncertainty", CVPR 2023) and SNGP (Liu et al., NeurIPS 2020) rely on to keep a residual
network's feature map bi-Lipschitz (distance aware):

    W_sn = W / max(1, σ̂(W) / c),

where σ̂ is the power-iteration estimate of W's largest singular value and c the coefficient. Weights whose
norm is already below c are left alone; larger ones are scaled down to norm c. torch's own `spectral_norm`
always divides by σ̂ (norm exactly 1), so the bound is implemented here as a parametrization of its own
(:class:`SoftSpectralNorm`), registered with `torch.nn.utils.parametrize`: the raw weight is stored as
``<layer>.parametrizations.weight.original`` and the power-iteration vectors as buffers, so both survive
checkpoints. As in torch, u and v take one power-iteration step per forward pass in training mode and stay
fixed in evaluation mode, and σ̂ = uᵀ W v is differentiated with u and v held constant.

A convolution is bounded through its kernel reshaped to out_channels × (in_channels·kh·kw), as
`torch.nn.utils.spectral_norm` and SNGP's reference (edward2 / uncertainty-baselines) do. This is not the
norm of the convolution as an operator: DDU's reference (github.com/omegafragger/DDU,
net/spectral_normalization/spectral_norm_conv_inplace.py) bounds 3×3 convolutions by power iteration on the
convolution itself at a fixed input size, a bound that can be up to √(kh·kw) times tighter. Batch norm layers
are not normalised, in DDU's and SNGP's references alike, so the network's Lipschitz constant is bounded
only up to their scales. DDU's other two changes to the network (leaky ReLU, average-pool shortcuts; its
``mod`` flag) are not made: the residual blocks are those of `resnet.py` and `wide_resnet.py`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from trustbench.backbones.resnet import ResNet18
from trustbench.backbones.wide_resnet import WideResNet

# Power-iteration steps taken when a layer is wrapped, so the first forward pass starts from a good
# estimate of σ (torch's spectral_norm takes the same number).
INITIAL_POWER_ITERATIONS = 15
NORMALISED_LAYERS = (nn.Conv2d, nn.Linear)


class SoftSpectralNorm(nn.Module):
    """The parametrization W ↦ W / max(1, σ̂(W) / coeff) of one weight tensor (module docstring).

    The weight is read as a matrix with one row per output unit (Linear: out × in; Conv2d: out_channels ×
    in_channels·kh·kw). `u` (one entry per row) and `v` (one per column) approximate its leading singular
    vectors.
    """

    u: torch.Tensor
    v: torch.Tensor

    def __init__(
        self, weight: torch.Tensor, coeff: float, n_power_iterations: int, eps: float = 1e-12
    ) -> None:
        super().__init__()
        if coeff <= 0 or n_power_iterations < 1:
            raise ValueError(
                "spectral normalisation needs coeff > 0 and n_power_iterations >= 1; "
                f"got coeff={coeff} and n_power_iterations={n_power_iterations}."
            )
        self.coeff = coeff
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        matrix = weight.detach().flatten(1)
        self.register_buffer("u", F.normalize(matrix.new_empty(matrix.shape[0]).normal_(), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(matrix.new_empty(matrix.shape[1]).normal_(), dim=0, eps=eps))
        self.power_iteration(matrix, INITIAL_POWER_ITERATIONS)

    @torch.no_grad()
    def power_iteration(self, matrix: torch.Tensor, steps: int) -> None:
        """`steps` alternating updates v ← Wᵀu / ‖Wᵀu‖, u ← W v / ‖W v‖, in place."""
        for _ in range(steps):
            self.v.copy_(F.normalize(matrix.T @ self.u, dim=0, eps=self.eps))
            self.u.copy_(F.normalize(matrix @ self.v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        matrix = weight.flatten(1)
        if self.training:
            self.power_iteration(matrix.detach(), self.n_power_iterations)
        # Cloned so that a later in-place power-iteration step cannot alter tensors saved for backward.
        u, v = self.u.clone(), self.v.clone()
        sigma = torch.dot(u, matrix @ v)
        return weight / torch.clamp(sigma / self.coeff, min=1.0)


def spectrally_normalised_layers(module: nn.Module) -> list[nn.Module]:
    """The layers of `module` whose weight carries a :class:`SoftSpectralNorm`, in module order."""
    return [
        layer
        for layer in module.modules()
        if parametrize.is_parametrized(layer, "weight")
        and any(isinstance(p, SoftSpectralNorm) for p in layer.parametrizations.weight)
    ]


def apply_spectral_norm(
    module: nn.Module, coeff: float = 3.0, n_power_iterations: int = 1, include_head: bool = False
) -> nn.Module:
    """Bound every Conv2d and Linear weight of `module` by `coeff` (module docstring); in place, returns it.

    A backbone's `head` (features → logits) is left alone unless `include_head`: DDU and SNGP normalise the
    feature extractor and keep an unconstrained output layer.
    """
    head = getattr(module, "head", None)
    skipped = set() if include_head or not isinstance(head, nn.Module) else set(head.modules())
    layers = [
        layer for layer in module.modules() if isinstance(layer, NORMALISED_LAYERS) and layer not in skipped
    ]
    already = [type(layer).__name__ for layer in layers if parametrize.is_parametrized(layer, "weight")]
    if already:
        raise ValueError(
            f"{type(module).__name__} already has parametrized weights ({', '.join(already)}); "
            "apply spectral normalisation once, to a network built without it."
        )
    for layer in layers:
        parametrize.register_parametrization(
            layer, "weight", SoftSpectralNorm(layer.weight, coeff, n_power_iterations)
        )
    return module


class SpectralResNet18(ResNet18):
    """The CIFAR ResNet-18 of `resnet.py` with every conv (stem, blocks, 1×1 shortcuts) bounded by `coeff`.

    DDU's CIFAR-10 model (coefficient 3, one power iteration; the head stays unconstrained).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        dropout: float = 0.0,
        coeff: float = 3.0,
        n_power_iterations: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__(input_shape, num_classes, dropout=dropout, base_width=base_width)
        apply_spectral_norm(self, coeff, n_power_iterations)


class SpectralWideResNet(WideResNet):
    """The WideResNet of `wide_resnet.py` with every conv bounded by `coeff`; the head stays unconstrained.

    WRN-28-10 is DDU's (coefficient 3) and SNGP's (bound 6 in uncertainty-baselines' CIFAR script) model.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 28,
        widen_factor: int = 10,
        dropout: float = 0.3,
        coeff: float = 3.0,
        n_power_iterations: int = 1,
    ) -> None:
        super().__init__(input_shape, num_classes, depth=depth, widen_factor=widen_factor, dropout=dropout)
        apply_spectral_norm(self, coeff, n_power_iterations)
