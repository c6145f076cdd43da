"""Virtual-logit Matching (Wang, Li, Feng & Zhang, "ViM: Out-Of-Distribution with Virtual-logit
Matching", CVPR 2022).

Fit: the origin u = −pinv(W)·b (the point the head maps to all-zero logits); the principal subspace P
spanned by the top-`dim` eigenvectors of the uncentred second moment of (f − u) over training features;
α = mean_i max_k logit_ik / mean_i ‖(f_i − u) projected off P‖ over the training set.
Score: the virtual logit α·‖residual‖ against the energy logsumexp(logits):

    score = α·‖(I − PPᵀ)(f − u)‖ − logsumexp(logits),

which is monotone in the paper's virtual-class softmax probability, so higher = more OOD (OpenOOD
returns the negation as confidence).

`dim` (the paper's D) defaults by feature dimension N: 1000 if N ≥ 2048 and 512 otherwise (the ViM
reference code's rule), and N/2 when N ≤ 512 (OpenOOD v1.5 uses 256 for ResNet-18's 512 features).

The tuning grid is relative to N: N/8, N/4, N/2 and 3N/4 (rounded), together with OpenOOD v1.5's absolute
`dim_list` values 256 and 1000, keeping those in [1, N). OpenOOD's list alone has nothing below 256, so
a small network (LeNet's N = 84) was never tuned although its AUROC depends strongly on D; for N = 512 the
grid is [64, 128, 256, 384] and for N = 2048 it is [256, 512, 1000, 1024, 1536], OpenOOD's values included.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trustbench.methods.ood.detector import Detector, Features, HparamGrid

OPENOOD_DIMS = (256, 1000)
DIM_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 3 / 4)


def default_principal_dim(feature_dim: int) -> int:
    """The principal-subspace dimension D used for N-dimensional features when none is given."""
    if feature_dim >= 2048:
        return 1000
    if feature_dim > 512:
        return 512
    return max(feature_dim // 2, 1)


def principal_dim_grid(feature_dim: int) -> list[int]:
    """Candidate principal dimensions for N-dimensional features, ascending (module docstring)."""
    candidates = {round(fraction * feature_dim) for fraction in DIM_FRACTIONS} | set(OPENOOD_DIMS)
    return sorted(dim for dim in candidates if 1 <= dim < feature_dim)


class ViM(Detector):
    """Scaled residual norm off the principal feature subspace, minus the logits' logsumexp."""

    name = "vim"
    needs_features = True
    needs_head = True

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and dim < 1:
            raise ValueError(f"vim: dim must be >= 1 (or None for the paper's default), got {dim}.")
        self.dim = dim
        self._origin: Tensor | None = None
        self._residual_basis: Tensor | None = None
        self._alpha: float | None = None

    @torch.no_grad()
    def fit(self, train: Features, head: nn.Linear | None = None) -> ViM:
        features = self._require_features(train).double()
        head = self._require_head(head)
        feature_dim = features.shape[1]
        dim = default_principal_dim(feature_dim) if self.dim is None else self.dim
        if dim >= feature_dim:
            raise ValueError(f"vim: dim={dim} must be below the feature dimension {feature_dim}.")
        weight = head.weight.double()
        bias = weight.new_zeros(len(weight)) if head.bias is None else head.bias.double()
        self._origin = -torch.linalg.pinv(weight) @ bias
        shifted = features - self._origin
        _, eigenvectors = torch.linalg.eigh(shifted.T @ shifted / len(shifted))
        # eigh sorts eigenvalues ascending: the first N − D eigenvectors span the residual space.
        self._residual_basis = eigenvectors[:, : feature_dim - dim]
        residual_norm = (shifted @ self._residual_basis).norm(dim=1)
        self._alpha = (train.logits.double().amax(dim=1).mean() / residual_norm.mean()).item()
        return self

    def score(self, data: Features) -> Tensor:
        features = self._require_features(data)
        shifted = features.double() - self._fitted(self._origin)
        virtual_logit = self._fitted(self._alpha) * (shifted @ self._fitted(self._residual_basis)).norm(dim=1)
        return (virtual_logit - data.logits.double().logsumexp(dim=1)).to(features.dtype)

    @classmethod
    def hparam_grid(cls, train: Features | None = None) -> HparamGrid:
        if train is None or train.features is None:
            return {"dim": list(OPENOOD_DIMS)}
        feature_dim = train.features.shape[1]
        return {"dim": principal_dim_grid(feature_dim) or [default_principal_dim(feature_dim)]}
