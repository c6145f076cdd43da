"""Which test points a suite evaluates and which inputs are valid: shared by the explanations and
adversarial suites."""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.evaluation.context import EvaluationContext


def seeded_rows(size: int, points: int, seed: int) -> Tensor:
    """The first `points` of a seeded permutation of range(size), sorted: the test rows evaluated."""
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    return order[:points].sort().values


def input_range(context: EvaluationContext) -> tuple[Tensor, Tensor]:
    """The valid inputs in model space: images within [0, 1] per pixel before normalisation (1×C×1×1);
    table columns within their training range (1×D)."""
    datamodule, dataset = context.datamodule, context.dataset
    if dataset.kind == "image":
        channels = dataset.input_shape[0]
        black = datamodule.normalize_inputs(torch.zeros(1, channels, 1, 1))
        white = datamodule.normalize_inputs(torch.ones(1, channels, 1, 1))
        return black, white
    return datamodule.x_train.amin(dim=0, keepdim=True), datamodule.x_train.amax(dim=0, keepdim=True)
