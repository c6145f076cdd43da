"""How far gradient maps move under the attacks of :mod:`trustbench.attacks.explanations` at a fixed ε, with
and without Dombrowski et al.'s β-smoothing defence; part of the explanations suite for the gradient
methods (``method=saliency`` or ``gradient_x_input``) when ``method.xai.attack_eps`` > 0.

Keys, means over the explained points, ``<map>`` = ``attack`` (the ReLU network's map, attacked through a
softplus_``surrogate_beta`` surrogate) or ``attack_smoothed`` (the map of the softplus_``smooth_beta``
network, attacked directly):

- ``xai/<map>/topk/topk_intersection`` ↑ and ``.../spearman`` ↑: the clean map against the map after the
  top-k attack (1: the attack did not move it); ``xai/<map>/noise/topk_intersection``, the same after
  uniform noise of the same ε, the baseline an attack should beat.
- ``xai/<map>/targeted/target_correlation`` (Pearson, map after the attack vs the target map, the map of
  the next explained point) against ``.../target_correlation_clean`` (the same before the attack), and
  ``.../topk_intersection`` with the clean map.
- ``xai/<map>/<attack>/label_kept``: share of points whose prediction the attacked input keeps (1 by
  construction) and ``.../moved``, the share the attack changed at all.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trustbench.attacks.explanations import (
    gradient_map,
    manipulate,
    smoothed_copy,
    targeted_objective,
    topk_attack_objective,
)
from trustbench.metrics.explanations import spearman, topk_intersection

GRADIENT_METHODS = {"saliency": False, "gradient_x_input": True}  # name -> map multiplies the input


def attack_metrics(
    model: nn.Module, x: Tensor, target: Tensor, settings: dict, method: str, bounds: tuple[Tensor, Tensor]
) -> tuple[dict[str, float], dict[str, Tensor]]:
    """The keys of the module docstring for the attribution `method` (saliency or gradient_x_input), and
    the maps to show: clean, after each attack, and the target, of both the ReLU and the smoothed map."""
    times_input = GRADIENT_METHODS[method]
    eps, steps = float(settings["attack_eps"]), int(settings["attack_steps"])
    features = x[0, 0].numel() if x.ndim == 4 else x.shape[1]
    k = max(1, round(float(settings["topk"]) * features))
    surrogate = smoothed_copy(model, float(settings["surrogate_beta"]))
    smooth = smoothed_copy(model, float(settings["smooth_beta"]))
    metrics: dict[str, float] = {}
    maps: dict[str, Tensor] = {}
    # (prefix, network whose map is reported, network differentiated by the attack)
    for prefix, explained, attacked in (("attack", model, surrogate), ("attack_smoothed", smooth, smooth)):

        def map_of(inputs: Tensor, network: nn.Module = explained) -> Tensor:
            return gradient_map(network, inputs, target, times_input).detach()

        clean = map_of(x)
        goal = clean.roll(1, dims=0)  # the target map: the next point's
        label = "" if prefix == "attack" else "smoothed "
        maps[f"{label}clean"] = clean
        with torch.no_grad():
            clean_probs = attacked(x).softmax(dim=1)
        objectives = {
            "topk": topk_attack_objective(attacked, clean, target, k, times_input),
            "targeted": targeted_objective(attacked, goal, clean_probs, target, times_input),
        }
        noise = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1) * eps
        noisy = torch.maximum(torch.minimum(x + noise.to(x.device), bounds[1]), bounds[0])
        metrics[f"xai/{prefix}/noise/topk_intersection"] = (
            topk_intersection(clean, map_of(noisy), k).mean().item()
        )
        for name, objective in objectives.items():
            x_adv = manipulate(attacked, model, x, objective, eps, steps, bounds)
            moved = map_of(x_adv)
            maps[f"{label}{name} attack"] = moved
            with torch.no_grad():
                kept = (model(x_adv).argmax(dim=1) == model(x).argmax(dim=1)).float().mean().item()
            key = f"xai/{prefix}/{name}"
            metrics[f"{key}/topk_intersection"] = topk_intersection(clean, moved, k).mean().item()
            metrics[f"{key}/spearman"] = spearman(clean, moved).nanmean().item()
            metrics[f"{key}/label_kept"] = kept
            metrics[f"{key}/moved"] = (x_adv != x).flatten(1).any(dim=1).float().mean().item()
            if name == "targeted":
                metrics[f"{key}/target_correlation"] = _pearson(moved, goal).nanmean().item()
                metrics[f"{key}/target_correlation_clean"] = _pearson(clean, goal).nanmean().item()
        maps[f"{label}target"] = goal
    return metrics, maps


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
