"""How much of a counterfactual's change lies in the tangent space of the data manifold.

Dombrowski et al. (arXiv:2206.05075) compare diffeomorphic counterfactuals with the conventional
attack in pixel space by splitting the change δ = x' − x into its component in the tangent space of the
data manifold at x and the orthogonal rest. The manifold is estimated by a generative model's decoder D
with latent codes z: its tangent space at D(z) is the column space of the Jacobian J_D(z) (D × L). The
share ‖P δ‖² / ‖δ‖², P the orthogonal projector onto that column space, is 1 for a change along the
manifold and about L / D for a change in a random direction.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

RANK_TOLERANCE = 1e-6
"""Singular values below this fraction of the largest do not span the tangent space (a degenerate J_D)."""


def decoder_jacobian(decode: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    """J_D at each row of `z` (N, L): (N, D, L) with D the decoded element count, by L forward-mode passes.

    Rows must be decoded independently (no batch statistics), which holds for every decoder in eval mode.
    """
    columns = []
    for index in range(z.shape[1]):
        direction = torch.zeros_like(z)
        direction[:, index] = 1.0
        _, column = torch.func.jvp(decode, (z,), (direction,))
        columns.append(column.flatten(1))
    return torch.stack(columns, dim=2)


def tangent_share(delta: Tensor, jacobian: Tensor) -> Tensor:
    """‖P δ‖² / ‖δ‖² per row (N,) for changes `delta` (N, *shape) and Jacobians (N, D, L); NaN where δ = 0.

    P projects onto the span of the left singular vectors of J whose singular values exceed
    :data:`RANK_TOLERANCE` times the largest, so a rank-deficient Jacobian spans only its true column space.
    """
    flat = delta.flatten(1).to(jacobian.dtype)
    if jacobian.ndim != 3 or jacobian.shape[:2] != flat.shape:
        raise ValueError(
            f"tangent_share needs one (D, L) Jacobian per change with D = {flat.shape[1]} elements; "
            f"got changes {tuple(delta.shape)} and Jacobians {tuple(jacobian.shape)}"
        )
    basis, singular, _ = torch.linalg.svd(jacobian, full_matrices=False)
    spans = singular > RANK_TOLERANCE * singular[:, :1]
    coordinates = (basis.transpose(1, 2) @ flat.unsqueeze(2)).squeeze(2) * spans
    total = flat.square().sum(dim=1)
    share = coordinates.square().sum(dim=1) / total
    return torch.where(total > 0, share, torch.full_like(share, float("nan")))
