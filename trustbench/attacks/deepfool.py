"""DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool deep
neural networks", CVPR 2016, Algorithm 2 and its ℓp form in section 3.3): a minimal perturbation, not one
bounded by a given ε.

At each step the model is linearised around the current point x_i; for each candidate class k the gap
f_k = g_k(x_i) − g_y(x_i) and its gradient w_k give the distance |f_k| / ‖w_k‖_q to the linearised boundary
(q the dual norm: ℓ1 for ℓ∞, ℓ2 for ℓ2); the closest class's step r_i is (distance + 10⁻⁴)·sign(w_k) in
ℓ∞ and (distance + 10⁻⁴)·w_k / ‖w_k‖₂ in ℓ2. The steps add up, and the point tried is
x + (1 + overshoot)·Σ r_i clipped to the input range, until the prediction changes or `steps` run out. On
an affine model the first step lands (1 + overshoot)·(distance + 10⁻⁴) from x, just past the nearest
boundary.

As foolbox's ``LinfDeepFoolAttack`` / ``L2DeepFoolAttack`` (which the supervisor benchmark's reference
ran): 50 steps, overshoot 0.02, the candidates the label and the 9 classes the clean input finds most
likely, inputs that are already misclassified left alone. Departs from it in two ways: g_k is the log of the
method's whole predicted probability (:meth:`Objective.class_gaps`), not a logit, so ensembles, MC dropout
and DUQ are attacked through their own prediction (for one softmax the gaps are the logit gaps exactly);
and each step differentiates only the inputs not yet misclassified, with one forward pass for all
candidates.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.attacks.objective import Objective

STABILITY = 1e-4  # added to each step's distance so the linearised boundary is crossed, as foolbox does


def deepfool(
    objective: Objective,
    x: Tensor,
    y: Tensor,
    norm: str,
    bounds: tuple[Tensor, Tensor],
    steps: int = 50,
    candidates: int = 10,
    overshoot: float = 0.02,
) -> tuple[Tensor, Tensor]:
    """Each input moved across the nearest linearised boundary (N×…), and whether it is misclassified there
    (N,); inputs it does not break come back where the last step left them. `norm` is linf or l2,
    `bounds` the valid input range (lower, upper), broadcastable to `x`."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"DeepFool's norm must be linf or l2, got {norm!r}")
    with torch.no_grad():
        probs = objective.probabilities(x)
    if probs.shape[1] < 2 or candidates < 2:
        raise ValueError(
            f"DeepFool needs at least 2 classes and 2 candidates, got {probs.shape[1]} and {candidates}"
        )
    classes = _candidate_classes(probs, y, min(candidates, probs.shape[1]))
    x_adv, total = x.clone(), torch.zeros_like(x)
    for _ in range(steps):
        active = (objective.predicted(x_adv) == y).nonzero().squeeze(1)
        if not len(active):
            break
        gaps, grads = objective.class_gaps(x_adv[active], classes[active])
        flat = grads.flatten(2)
        dual = flat.abs().sum(-1) if norm == "linf" else flat.norm(dim=-1)
        distances = gaps.abs() / (dual + 1e-8)
        closest = distances.argmin(dim=1)
        rows = torch.arange(len(active), device=x.device)
        distance, direction = distances[rows, closest] + STABILITY, grads[rows, closest]
        if norm == "linf":
            step = direction.sign()
        else:
            step = direction / (direction.flatten(1).norm(dim=1) + 1e-8).view(-1, *[1] * (x.ndim - 1))
        total[active] += distance.view(-1, *[1] * (x.ndim - 1)) * step
        moved = x[active] + (1 + overshoot) * total[active]
        x_adv[active] = torch.maximum(torch.minimum(moved, bounds[1]), bounds[0])
    return x_adv, objective.predicted(x_adv) != y


def _candidate_classes(probs: Tensor, y: Tensor, candidates: int) -> Tensor:
    """Per row the label, then the `candidates` − 1 other classes in decreasing clean probability (N×K)."""
    others = probs.scatter(1, y[:, None], float("-inf")).argsort(dim=1, descending=True)
    return torch.cat([y[:, None], others[:, : candidates - 1]], dim=1)
