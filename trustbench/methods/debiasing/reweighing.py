"""Reweighing: weigh each (group, label) cell so that group and label look independent in training.

Kamiran & Calders, "Data preprocessing techniques for classification without discrimination", KAIS 2012
(AIF360's ``Reweighing``): an example with S = s and Y = y gets weight

    w(s, y) = P(S = s) · P(Y = y) / P(S = s, Y = y) = n_s · n_y / (n · n_sy),

counted on the training split, and the classifier minimises the weighted cross-entropy. The weights are
fixed before training and saved with the model, so a resumed run uses the same ones.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, SchedulerFactory
from trustbench.methods.debiasing.classifier import FairClassifier
from trustbench.metrics.fairness import check_binary


def reweighing_weights(y: Tensor, group: Tensor) -> Tensor:
    """The 2×2 table w[s, y] of Kamiran & Calders weights for binary labels `y` and groups `group`.

    A cell with no examples gets weight 0 (it weighs nothing anyway).
    """
    labels = check_binary("y", y).long()
    groups = check_binary("group", group, len(labels)).long()
    counts = torch.zeros(2, 2, dtype=torch.float64).index_put_(
        (groups, labels), torch.ones(len(labels), dtype=torch.float64), accumulate=True
    )
    expected = counts.sum(dim=1, keepdim=True) * counts.sum(dim=0, keepdim=True) / len(labels)
    return torch.where(counts > 0, expected / counts.clamp_min(1), torch.zeros_like(counts)).float()


class Reweighing(FairClassifier):
    """Cross-entropy with each example weighted by w(S, Y) from the training split (AIF360 normalises
    nothing further: the weights already average to 1 over the training set)."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        self.register_buffer("cell_weights", torch.ones(2, 2))

    def on_fit_start(self) -> None:
        datamodule = self.trainer.datamodule
        self.cell_weights.copy_(
            reweighing_weights(datamodule.y_train, datamodule.groups_train[datamodule.protected])
        )

    def task_loss(self, logits: Tensor, y: Tensor, group: Tensor) -> Tensor:
        weights = self.cell_weights[group.long(), y]
        return (weights * F.cross_entropy(logits, y, reduction="none")).mean()
