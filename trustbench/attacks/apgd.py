"""APGD-CE (Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020, Algorithm 1): PGD on the cross-entropy with momentum and a step
size that halves, per example, when progress stalls, so no step size needs tuning.

Per example: η starts at 2ε; after the first plain step each iterate is
x(k+1) = P(x(k) + α(z(k+1) − x(k)) + (1 − α)(x(k) − x(k−1))), z(k+1) = P(x(k) + η·step(∇)), α = 0.75.
At the checkpoints w_j ≈ p_j·N (p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)),
η halves and the iterate returns to the best point so far when the loss rose in fewer than ρ = 0.75 of
the steps since the last checkpoint, or when η was not halved there and the best loss has not moved.

Departs from the authors' code (fra31/auto-attack) in two small ways: after a halving the momentum
restarts from the best point (their code keeps the previous iterate), and every restart starts from a
uniform point of the ball (theirs scales a uniform draw by its largest entry). Like PGD here, an example
counts as broken when any iterate of any restart is misclassified.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trustbench.attacks.objective import Breaks, Objective
from trustbench.attacks.pgd import Threat

MOMENTUM = 0.75
RHO = 0.75


def checkpoints(steps: int) -> set[int]:
    """The iterations w_j (j ≥ 1) at which the step size may halve: w₁ = ⌊0.22·N⌋, then gaps shrinking by
    ⌊0.03·N⌋ down to ⌊0.06·N⌋, in whole steps as the authors' code counts them (the paper's p_j rounded
    up can differ by one step where 100·p_j is not exact in floating point)."""
    first, shrink, smallest = (max(int(share * steps), 1) for share in (0.22, 0.03, 0.06))
    marks, mark, gap = set(), first, first
    while mark < steps:
        marks.add(mark)
        gap = max(gap - shrink, smallest)
        mark += gap
    return marks


def apgd(
    objective: Objective,
    x: Tensor,
    y: Tensor,
    threat: Threat,
    steps: int,
    restarts: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Adversarial examples (N×…) and whether each example was misclassified at some iterate (N,)."""
    breaks = Breaks(objective, x, y)
    if threat.eps == 0 or steps < 1:
        return breaks.result()
    marks = checkpoints(steps)
    shape = (-1, *[1] * (x.ndim - 1))
    for _ in range(restarts):
        eta = torch.full((len(x),), 2.0 * threat.eps, device=x.device)
        start = threat.random_start(x, generator)
        start_loss, start_grad = objective.gradient(start, y)
        current = threat.project(threat.step(start, start_grad, eta), x)
        loss, grad = objective.gradient(current, y)
        breaks.record(start)
        breaks.record(current)
        rose = start_loss < loss
        best_loss = torch.maximum(start_loss, loss)
        best_x = torch.where(rose.view(shape), current, start)
        previous, increases = start, rose.float()
        halved_last, best_loss_at_mark, last_mark = torch.zeros_like(rose), best_loss.clone(), 0
        for k in range(1, steps):
            z = threat.project(threat.step(current, grad, eta), x)
            moved = current + MOMENTUM * (z - current) + (1 - MOMENTUM) * (current - previous)
            following = threat.project(moved, x).detach()
            next_loss, next_grad = objective.gradient(following, y)
            if breaks.record(following):
                return breaks.result()
            increases += (next_loss > loss).float()
            improved = next_loss > best_loss
            best_x[improved], best_loss = following[improved], torch.maximum(best_loss, next_loss)
            previous, current, loss, grad = current, following, next_loss, next_grad
            if k in marks:
                stalled = increases < RHO * (k - last_mark)
                flat = ~halved_last & (best_loss == best_loss_at_mark)
                halve = stalled | flat
                eta = torch.where(halve, eta / 2, eta)
                if bool(halve.any()):
                    current = torch.where(halve.view(shape), best_x, current)
                    previous = torch.where(halve.view(shape), best_x, previous)
                    loss, grad = objective.gradient(current, y)
                halved_last, best_loss_at_mark, last_mark = halve, best_loss.clone(), k
                increases = torch.zeros_like(increases)
    return breaks.result()
