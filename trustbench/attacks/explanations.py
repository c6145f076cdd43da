"""Attacks on gradient explanations: move the map, keep the label, within an ℓ∞ budget ε.

- Top-k attack (Ghorbani, Abid & Zou, "Interpretation of Neural Networks is Fragile", AAAI 2019): push
  relevance out of the clean map's k most relevant pixels, −Σ_{i ∈ top-k(x)} h_i(x′) maximised.
- Targeted manipulation (Dombrowski, Alber, Anders, Ackermann, Müller & Kessel, "Explanations can be
  manipulated and geometry is to blame", NeurIPS 2019): ‖h(x′) − h_t‖² + γ‖p(x′) − p(x)‖² minimised,
  h_t the map of another input, so the explanation shows something else while the output stays.

Maps h are the saliency |∂ logit_y / ∂x| (or gradient × input) summed over channels and normalised to sum
1 per example. A ReLU network's map has zero gradient in x almost everywhere, so both papers compute the
attack's gradient on a copy with every ReLU replaced by softplus_β (β = `surrogate_beta`) and check the
result on the ReLU network, as here. Dombrowski et al.'s defence, β-smoothing, explains with the
softplus_β network itself (small β); attacking it, the attacker differentiates that smoothed map
directly (the adaptive attack). Both attacks take signed-gradient steps of 2.5·ε/steps projected onto the
ε-ball and [lower, upper], keeping the best iterate whose predicted label is unchanged (the clean input if
none is); Dombrowski et al. use unconstrained Adam steps instead, so ε here makes the two comparable.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn


def smoothed_copy(model: nn.Module, beta: float) -> nn.Module:
    """A deep copy of `model` with every ``nn.ReLU`` replaced by ``nn.Softplus(beta)`` (same weights)."""
    smooth = copy.deepcopy(model)
    for parent in list(smooth.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, nn.Softplus(beta=beta))
    return smooth.eval()


def gradient_map(
    model: nn.Module, x: Tensor, target: Tensor, times_input: bool, graph: bool = False
) -> Tensor:
    """|∂ logit_target / ∂x| (or x ⊙ ∂ logit_target / ∂x, then |·|) summed over channels, each map
    normalised to sum 1; `graph` keeps it differentiable in x (double backpropagation)."""
    inputs = x if x.requires_grad else x.detach().requires_grad_(True)
    with torch.enable_grad():
        logit = model(inputs).gather(1, target[:, None]).sum()
        (grad,) = torch.autograd.grad(logit, inputs, create_graph=graph)
    relevance = (inputs * grad if times_input else grad).abs()
    relevance = relevance.sum(dim=1) if relevance.ndim == 4 else relevance
    return relevance / relevance.flatten(1).sum(dim=1).clamp_min(1e-12).view(-1, *[1] * (relevance.ndim - 1))


def manipulate(
    attacked: nn.Module,
    checked: nn.Module,
    x: Tensor,
    objective: Callable[[Tensor, Tensor], Tensor],
    eps: float,
    steps: int,
    bounds: tuple[Tensor, Tensor],
) -> Tensor:
    """Minimise `objective(x′, probs of `attacked` at x′)` (per example, N) by signed-gradient steps in the
    ε-ball; returns the best iterate whose label under `checked` is that of x (x itself if none)."""
    with torch.no_grad():
        label = checked(x).argmax(dim=1)
    best, best_value = x.clone(), torch.full((len(x),), float("inf"))
    size = 2.5 * eps / steps
    x_adv = x.clone()
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            value = objective(x_adv, attacked(x_adv).softmax(dim=1))
            (grad,) = torch.autograd.grad(value.sum(), x_adv)
        with torch.no_grad():
            kept = checked(x_adv).argmax(dim=1) == label
            better = kept & (value.detach() < best_value)
            best[better], best_value[better] = x_adv.detach()[better], value.detach()[better]
            moved = x + (x_adv - size * grad.sign() - x).clamp(-eps, eps)
            x_adv = torch.maximum(torch.minimum(moved, bounds[1]), bounds[0])
    return best


def topk_attack_objective(
    attacked: nn.Module, clean_map: Tensor, target: Tensor, k: int, times_input: bool
) -> Callable[[Tensor, Tensor], Tensor]:
    """Ghorbani et al.'s objective, to minimise: the relevance the map of x′ keeps in x's top-k pixels."""
    top = clean_map.flatten(1).topk(k, dim=1).indices

    def objective(x_adv: Tensor, probs: Tensor) -> Tensor:
        relevance = gradient_map(attacked, x_adv, target, times_input, graph=True).flatten(1)
        return relevance.gather(1, top).sum(dim=1)

    return objective


def targeted_objective(
    attacked: nn.Module,
    target_map: Tensor,
    clean_probs: Tensor,
    target: Tensor,
    times_input: bool,
    gamma: float = 1e-5,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Dombrowski et al.'s objective: squared distance of the map to `target_map` plus γ times the squared
    change of the output probabilities; γ = 1e-5 is their code's ratio of the two prefactors (1e6 / 1e11)."""

    def objective(x_adv: Tensor, probs: Tensor) -> Tensor:
        relevance = gradient_map(attacked, x_adv, target, times_input, graph=True)
        return (relevance - target_map).flatten(1).pow(2).sum(1) + gamma * (probs - clean_probs).pow(2).sum(1)

    return objective
