"""What every debiasing method shares: a binary classifier trained on batches that carry the protected group.

A debiasing method's loss is a task loss plus a fairness term, both functions of the batch's logits,
labels and protected attribute S (0 = unprivileged, 1 = privileged). Subclasses override `fairness_term`
(and, for sample reweighting, `task_loss`). Class 1 is the favourable outcome, so the methods need a
binary task; `predict` is ERM's (softmax, MSP uncertainty) so every family's evaluation applies unchanged.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.errors import ConfigError
from trustbench.methods.base import OptimizerFactory, Prediction, SchedulerFactory, TrustModule


class FairClassifier(TrustModule):
    """Binary classifier whose training batches are ``(x, y, group)``; the loss is task + fairness term.

    The runner gives these methods group-carrying batches when the method config says
    ``needs_groups: true`` and the data config names its protected attribute (``data.protected``).
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ) -> None:
        if num_classes != 2:
            raise ConfigError(
                f"debiasing methods train binary classifiers (class 1 = favourable outcome), but the data "
                f"has {num_classes} classes; use a binary dataset such as adult, compas, german or "
                "mnist_semi_random"
            )
        super().__init__(backbone, num_classes, optimizer, scheduler)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        if len(batch) != 3:
            raise ValueError(
                f"{type(self).__name__} trains on (x, y, group) batches but got {len(batch)} tensors; set "
                "data.protected to the protected attribute (e.g. data.protected=sex)"
            )
        x, y, group = batch
        logits = self.backbone(x)
        loss = self.task_loss(logits, y, group) + self.fairness_term(logits, y, group)
        self.record_training_loss(loss)
        return loss

    def task_loss(self, logits: Tensor, y: Tensor, group: Tensor) -> Tensor:
        """Cross-entropy of the batch; reweighting methods weigh it by (group, label)."""
        return F.cross_entropy(logits, y)

    def fairness_term(self, logits: Tensor, y: Tensor, group: Tensor) -> Tensor:
        """The weighted fairness penalty added to the task loss; none for the plain classifier."""
        return logits.new_zeros(())

    def training_loss(self, x: Tensor, y: Tensor) -> Tensor:
        raise TypeError(
            f"{type(self).__name__} needs the protected group of each example: train it on (x, y, group) "
            "batches through training_step"
        )

    def predict(self, x: Tensor) -> Prediction:
        probs = self.backbone(x).softmax(dim=1)
        return Prediction(probs=probs, uncertainty=-probs.max(dim=1).values)


def favourable_probability(logits: Tensor) -> Tensor:
    """P̂(Y = 1 | x) from two-class logits: the network output h(x) the fairness terms compare.

    σ(z₁ − z₀) equals softmax(z)[:, 1]. z₁ − z₀ is taken as one matrix-vector product with (−1, 1), whose
    backward is one kernel, where two column selections and a subtraction take five (fairness terms run
    on every training step); the products by ±1 are exact, so the difference is the same float. The
    (−1, 1) vector is built once per dtype and device, not on every step.
    """
    return torch.sigmoid(logits @ _difference_vector(logits.dtype, logits.device))


@functools.lru_cache(maxsize=8)
@torch.inference_mode(False)
def _difference_vector(dtype: torch.dtype, device: torch.device) -> Tensor:
    """(−1, 1): its product with two-class logits is z₁ − z₀. Built outside inference mode even when first
    asked for inside it, since training saves it for backward."""
    return torch.tensor([-1.0, 1.0], dtype=dtype, device=device)


def split_by_group(values: Tensor, group: Tensor) -> tuple[Tensor, Tensor] | None:
    """``values`` of the unprivileged (S = 0) and privileged (S = 1) members of a batch; None when the
    batch holds only one group, where a between-group penalty is undefined (callers then add 0).

    ``group`` holds 0/1, as the data module checks once per dataset (not here, on every training step)."""
    privileged = group.to(torch.bool)
    if privileged.all() or not privileged.any():
        return None
    return values[~privileged], values[privileged]
