"""The annotations suite: how well a model's explanations agree with the true per-pixel annotations of the
test split (decoy MNIST / Fashion-MNIST list it in ``data.suites``), for any method, ERM included.

On the first `POINTS` test images (their decoy squares have a random shade, so ``cls/acc`` is the
decoy-free accuracy), for the predicted class:

- ``xai/mask/iou``, ``precision``, ``recall`` ↑: the Grad-CAM map (last conv layer, min-max normalised)
  above 0.5 against the relevant region (A = 1), per image, then averaged (RES's evaluation); an image
  whose map selects nothing has precision 0 (scikit-learn's zero_division=0), as a collapsed map should.
- ``xai/mask/decoy_share`` ↓: share of the input-gradient saliency |∂ logit / ∂x| on the decoy square
  (A = −1), Ross et al.'s view of a model that is right for the wrong reasons; its area is 16 of 784
  pixels (2 %), so a model that ignores the square scores about that or less.
- ``xai/mask/gradcam_decoy_share`` ↓: the same share of the Grad-CAM map.

Plot: ``plots/xai_annotations.png``, images with their annotation, Grad-CAM and saliency.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.evaluation.context import EvaluationContext
from trustbench.methods.explanations.guided import grad_cam_map
from trustbench.metrics.explanations import finite_mean
from trustbench.plots.explanations import saliency_grid

POINTS = 1000
BATCH = 250


def evaluate_annotations(context: EvaluationContext) -> dict[str, float]:
    """The metrics and plot of the module docstring."""
    annotation = context.dataset.annotations_test
    if annotation is None:
        raise ValueError(
            f"the annotations suite scores explanations against per-pixel annotations, but "
            f"{context.dataset.name} has none; use data=decoy_mnist or data=decoy_fashion_mnist"
        )
    backbone = context.module.backbone.eval()
    x = context.datamodule.x_test[:POINTS].to(context.module.device)
    annotation = annotation[:POINTS].to(x.device)
    cams, saliencies = zip(*(_maps(backbone, x[i : i + BATCH]) for i in range(0, len(x), BATCH)), strict=True)
    cam, saliency = torch.cat(cams), torch.cat(saliencies)
    scores = mask_scores(cam > 0.5, annotation == 1)
    decoy = (annotation == -1).float()
    scores["xai/mask/decoy_share"] = _share(saliency, decoy)
    scores["xai/mask/gradcam_decoy_share"] = _share(cam, decoy)
    maps = {"annotation": annotation[:8].float(), "grad-cam": cam[:8], "saliency": saliency[:8]}
    titles = [f"label {int(y)}" for y in context.datamodule.y_test[:8]]
    legend = (
        "annotation: red = the object, blue = the decoy square; maps: relevance, each scaled to its maximum"
    )
    path = context.run_dir / "plots" / "xai_annotations.png"
    context.draw(lambda: {"xai/annotations": saliency_grid(x[:8], maps, titles, path, legend=legend)})
    return scores


def mask_scores(selected: Tensor, relevant: Tensor) -> dict[str, float]:
    """Mean per-image IoU, precision and recall of the `selected` pixels against the `relevant` ones (N×H×W
    booleans); an empty selection has precision 0; images with an empty union or relevant region are
    left out of the IoU and recall means."""
    hit = (selected & relevant).flatten(1).sum(1).float()
    chosen, wanted = selected.flatten(1).sum(1).float(), relevant.flatten(1).sum(1).float()
    union = (selected | relevant).flatten(1).sum(1).float()
    return {
        "xai/mask/iou": finite_mean(hit / union),
        "xai/mask/precision": finite_mean(hit / chosen.clamp_min(1)),
        "xai/mask/recall": finite_mean(hit / wanted),
    }


def _maps(backbone: torch.nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    with torch.enable_grad():
        predicted = backbone(x).argmax(dim=1)
        _, cam = grad_cam_map(backbone, x, predicted, graph=False)
        inputs = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(backbone(inputs).gather(1, predicted[:, None]).sum(), inputs)
    return cam.detach(), grad.abs().sum(dim=1).detach()


def _share(relevance: Tensor, region: Tensor) -> float:
    total = relevance.flatten(1).sum(1).clamp_min(1e-12)
    return ((relevance * region).flatten(1).sum(1) / total).mean().item()
