"""Explanation-guided training: cross-entropy plus a term that makes the model's explanation agree with a
per-pixel annotation A ∈ {−1 irrelevant, 0 unknown, 1 relevant} (data=decoy_mnist, decoy_fashion_mnist).

Training batches are (x, y, A) (the method config says ``needs_annotations: true``); prediction is ERM's.

- ``rrr``: Ross, Hughes & Doshi-Velez, "Right for the Right Reasons" (IJCAI 2017): λ·Σ_pixels
  (1[A = −1] · ∂/∂x Σ_k log p_k)², the input gradient of the summed log-probabilities, mean over the
  batch. Ross et al. sum over the batch and use λ = 1000 on their scale; we average, λ = `lam`.
- ``gradia``: GRADIA as the RES authors implement it (their baseline): mean |M − 1[A = 1]|, M the
  min-max-normalised Grad-CAM map of the label at the last conv layer, differentiable (double
  backpropagation; captum's LayerGradCam cannot be trained through, so :func:`grad_cam_map` is ours).
- ``res``: RES, Gao et al., "RES: A Robust Framework for Guiding Visual Explanation" (KDD 2022), after the
  reference ``RES.py``: the robust term relu(mean_{A≠0} |tanh(5(M − a)) − A| − η), a the threshold of M
  that satisfies the most sign constraints of A (their brute-force solver, here over `thresholds`
  candidates), plus mean |M − Â| and `reg`·mean (Â − 1[A = 1])², Â = σ(g(1[A = 1])) a learnt imputation of
  the annotation by two 3×3 convolutions on the mask alone (their "S1" variant; they also offer the
  mask with the image and deeper nets), trained with the classifier.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, SchedulerFactory
from trustbench.methods.erm import ERM
from trustbench.methods.explanations.layers import last_conv


def grad_cam_map(backbone: nn.Module, x: Tensor, target: Tensor, graph: bool) -> tuple[Tensor, Tensor]:
    """The logits and the Grad-CAM map of `target` (N×H×W at the input's size, min-max normalised per
    example to [0, 1]); `graph` keeps the map differentiable in the weights."""
    layer, captured = last_conv(backbone), {}
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.update(a=output))
    try:
        logits = backbone(x)
    finally:
        handle.remove()
    activations = captured["a"]
    (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activations, create_graph=graph)
    cam = F.relu((grads.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    low = cam.flatten(1).amin(1).view(-1, 1, 1)
    high = cam.flatten(1).amax(1).view(-1, 1, 1)
    return logits, (cam - low) / (high - low + 1e-8)


class AnnotatedTraining(ERM):
    """ERM whose training batches carry annotations (pixels or concepts); subclasses give a batch's loss."""

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        if len(batch) != 3:
            raise ValueError(
                f"{type(self).__name__} trains on (x, y, annotation) batches but got {len(batch)} tensors; "
                "use annotated data (decoy_mnist, decoy_fashion_mnist, digit_mosaic)"
            )
        x, y, annotation = batch
        loss = self.guided_loss(x, y, annotation)
        self.record_training_loss(loss)
        return loss

    def guided_loss(self, x: Tensor, y: Tensor, annotation: Tensor) -> Tensor:
        raise NotImplementedError


class ExplanationGuided(AnnotatedTraining):
    """Cross-entropy plus `lam` times an explanation term."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        lam: float = 1.0,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        self.lam = lam


class RightForTheRightReasons(ExplanationGuided):
    """Ross et al. 2017's input-gradient penalty on the irrelevant region (module docstring)."""

    def guided_loss(self, x: Tensor, y: Tensor, annotation: Tensor) -> Tensor:
        inputs = x.detach().requires_grad_(True)
        logits = self.backbone(inputs)
        (grad,) = torch.autograd.grad(logits.log_softmax(dim=1).sum(), inputs, create_graph=True)
        irrelevant = (annotation == -1).unsqueeze(1)
        penalty = (grad * irrelevant).pow(2).flatten(1).sum(dim=1).mean()
        return F.cross_entropy(logits, y) + self.lam * penalty


class Gradia(ExplanationGuided):
    """GRADIA's L1 alignment of the Grad-CAM map with the relevant region (module docstring)."""

    def guided_loss(self, x: Tensor, y: Tensor, annotation: Tensor) -> Tensor:
        logits, cam = grad_cam_map(self.backbone, x, y, graph=True)
        return F.cross_entropy(logits, y) + self.lam * (cam - (annotation == 1).float()).abs().mean()


class RobustExplanationSupervision(ExplanationGuided):
    """RES (module docstring); `margin` is η, `thresholds` the candidates of the brute-force solver."""

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        lam: float = 1.0,
        margin: float = 0.1,
        reg: float = 1.0,
        thresholds: int = 20,
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler, lam)
        self.margin, self.reg, self.thresholds = margin, reg, thresholds
        self.imputer = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))

    def guided_loss(self, x: Tensor, y: Tensor, annotation: Tensor) -> Tensor:
        logits, cam = grad_cam_map(self.backbone, x, y, graph=True)
        sign = annotation.float()
        positive = (annotation == 1).float()
        threshold = best_threshold(cam.detach(), sign, self.thresholds)
        known = (annotation != 0).float()
        disagreement = ((torch.tanh(5 * (cam - threshold.view(-1, 1, 1))) - sign).abs() * known).flatten(1)
        robust = F.relu(disagreement.sum(1) / known.flatten(1).sum(1).clamp_min(1) - self.margin).mean()
        imputed = torch.sigmoid(self.imputer(positive.unsqueeze(1)))[:, 0]
        alignment = (cam - imputed).abs().mean() + self.reg * (imputed - positive).pow(2).mean()
        return F.cross_entropy(logits, y) + self.lam * (robust + alignment)


def best_threshold(cam: Tensor, sign: Tensor, candidates: int) -> Tensor:
    """Per example, the threshold a among `candidates` evenly spaced in (0, 1) for which the most annotated
    pixels agree with the map (M > a where A = 1, M < a where A = −1); ties take the smallest a."""
    grid = torch.linspace(0, 1, candidates + 2, device=cam.device)[1:-1]
    above = cam.flatten(1)[:, None, :] > grid[None, :, None]
    flat = sign.flatten(1)[:, None, :]
    agreeing = ((above & (flat > 0)) | (~above & (flat < 0))).sum(dim=2)
    return grid[agreeing.argmax(dim=1)]
