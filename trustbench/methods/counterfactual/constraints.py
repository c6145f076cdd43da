"""What a counterfactual may change, in the model's input space, and the projection that enforces it.

Built once per dataset from its :class:`~trustbench.data.arrays.TabularMeta` (tabular) or its pixel range
(images), then applied by every explainer after each search step (`project`) and to its final answer
(`snap`). A counterfactual returned by an explainer therefore never changes an immutable feature, never
lowers an increase-only one, stays in range and keeps each one-hot group one-hot; the metric suite still
counts violations, so a broken explainer shows up as a number, not a silent pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from trustbench.data.arrays import ArrayDataset
from trustbench.data.tabular import feature_columns


@dataclass(frozen=True)
class Constraints:
    """Per-input-element bounds and masks, each shaped like one example (D,) or (C, H, W).

    `lower`/`upper` are the valid range as the model sees inputs (after normalisation); a point already
    outside it (a test row beyond the training range) may stay where it is, never move further out.
    `mutable` is False on immutable elements; `increase_only` marks elements that may only grow.
    `onehot_groups` lists the flat column indices of each one-hot group that may change (tabular only): the
    groups explainers snap and the one-hot check tests. `categorical_groups` lists every one-hot group of
    the dataset, immutable ones included (``TabularMeta.categorical_groups``): the groups metrics count as
    one feature each, so features are those of the raw table whatever may change.
    """

    lower: Tensor
    upper: Tensor
    mutable: Tensor
    increase_only: Tensor
    onehot_groups: tuple[tuple[int, ...], ...] = ()
    categorical_groups: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        loose = [list(group) for group in self.onehot_groups if group not in self.categorical_groups]
        if loose:
            raise ValueError(
                f"onehot_groups {loose} are not among categorical_groups; list every one-hot group of the "
                "dataset in categorical_groups and the mutable ones in onehot_groups too."
            )

    @classmethod
    def for_dataset(cls, dataset: ArrayDataset, normalize_inputs: Callable[[Tensor], Tensor]) -> Constraints:
        """Constraints of `dataset` in model-input space (`normalize_inputs` maps raw values to it)."""
        shape = dataset.input_shape
        lower = normalize_inputs(torch.zeros(1, *shape))[0]
        upper = normalize_inputs(torch.ones(1, *shape))[0]
        mutable = torch.ones(shape, dtype=torch.bool)
        increase_only = torch.zeros(shape, dtype=torch.bool)
        meta = dataset.tabular
        if meta is None:
            return cls(lower, upper, mutable, increase_only)
        for feature in meta.immutable:
            mutable[list(feature_columns(meta, feature))] = False
        for feature in meta.increase_only:
            increase_only[list(feature_columns(meta, feature))] = True
        groups = tuple(group for group in meta.categorical_groups if bool(mutable[list(group)].all()))
        return cls(lower, upper, mutable, increase_only, groups, meta.categorical_groups)

    def project(self, candidate: Tensor, original: Tensor) -> Tensor:
        """`candidate` moved to the nearest point that respects ranges, immutables and increase-only.

        `candidate` is (N, *shape) or (N, k, *shape) for k counterfactuals per input; `original` is
        (N, *shape). One-hot groups are left relaxed (see `snap`), so gradient searches can move through
        them continuously.
        """
        original = self._aligned(original, candidate)
        low = torch.minimum(self.lower, original)
        high = torch.maximum(self.upper, original)
        low = torch.where(self.increase_only, torch.maximum(low, original), low)
        projected = torch.maximum(torch.minimum(candidate, high), low)
        return torch.where(self.mutable, projected, original)

    def snap(self, candidate: Tensor, original: Tensor) -> Tensor:
        """`project`, then each mutable one-hot group set to the one-hot vector of its largest entry."""
        projected = self.project(candidate, original)
        if not self.onehot_groups:
            return projected
        flat = projected.reshape(*projected.shape[: projected.ndim - self.lower.ndim], -1).clone()
        for group in self.onehot_groups:
            columns = list(group)
            winner = flat[..., columns].argmax(dim=-1)
            flat[..., columns] = torch.nn.functional.one_hot(winner, len(columns)).to(flat.dtype)
        return flat.reshape(projected.shape)

    def _aligned(self, original: Tensor, candidate: Tensor) -> Tensor:
        """`original` (N, *shape) viewed to broadcast against a candidate with an extra set axis."""
        if candidate.ndim == original.ndim + 1:
            return original.unsqueeze(1)
        if candidate.shape != original.shape:
            raise ValueError(
                f"counterfactuals of shape {tuple(candidate.shape)} do not match inputs of shape "
                f"{tuple(original.shape)}; give (N, *shape) or (N, k, *shape) for N inputs"
            )
        return original
