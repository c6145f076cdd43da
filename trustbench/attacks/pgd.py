"""Projected gradient descent (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018) in ℓ∞ and ℓ2.

Each restart starts at a uniformly random point of the ε-ball (ℓ∞: per feature; ℓ2: a uniform direction
scaled by ε·u^(1/d)), or at the input itself without a random start (the basic iterative method,
:mod:`trustbench.attacks.fgsm`), then takes `steps` steps of size `step_size` (ℓ∞: along the gradient's
sign; ℓ2: along the normalised gradient), projecting onto the ball and the valid input range after each. An
example counts as broken when any iterate of any restart is misclassified (the attack keeps the first
misclassified point it finds), so more steps and restarts can only lower robust accuracy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from trustbench.attacks.objective import Breaks, Objective


@dataclass(frozen=True)
class Threat:
    """The ε-ball around each input, in model-input units, and the valid input range (broadcastable)."""

    norm: str  # "linf" or "l2"
    eps: float
    lower: Tensor
    upper: Tensor

    def __post_init__(self) -> None:
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"threat norm must be linf or l2, got {self.norm!r}")

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """The closest point to `x_adv` within ε of `x` (in the norm), then clamped to the valid range."""
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (self.eps / norms).clamp(max=1.0).view(-1, *[1] * (x.ndim - 1))
        return torch.maximum(torch.minimum(x + delta, self.upper), self.lower)

    def random_start(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """A uniform point of the ε-ball around each input (`generator` None: the global one)."""
        if self.norm == "linf":
            noise = (torch.rand(x.shape, generator=generator) * 2 - 1) * self.eps
        else:
            direction = torch.randn(x.shape, generator=generator)
            direction = direction / direction.flatten(1).norm(dim=1).view(-1, *[1] * (x.ndim - 1))
            radius = torch.rand(len(x), generator=generator) ** (1.0 / x[0].numel()) * self.eps
            noise = direction * radius.view(-1, *[1] * (x.ndim - 1))
        return self.project(x + noise.to(x.device, x.dtype), x)

    def step(self, x_adv: Tensor, grad: Tensor, size: Tensor | float) -> Tensor:
        """One ascent step of `size` (a number or one per example) in the norm's steepest direction."""
        if self.norm == "linf":
            direction = grad.sign()
        else:
            direction = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (grad.ndim - 1))
        if isinstance(size, Tensor):
            size = size.view(-1, *[1] * (grad.ndim - 1))
        return x_adv + size * direction


def iterates(
    objective: Objective,
    x: Tensor,
    y: Tensor,
    threat: Threat,
    steps: int,
    size: float,
    generator: torch.Generator | None,
    random_start: bool = True,
) -> Iterator[Tensor]:
    """The start (random, or `x` itself) and each of the `steps` PGD iterates of one restart, in order."""
    x_adv = threat.random_start(x, generator) if random_start else x.clone()
    yield x_adv
    for _ in range(steps):
        _, grad = objective.gradient(x_adv, y)
        x_adv = threat.project(threat.step(x_adv, grad, size), x).detach()
        yield x_adv


def default_step_size(threat: Threat, steps: int) -> float:
    """2.5·ε / steps, Madry et al.'s choice: the ball's diameter is crossable within the steps."""
    return 2.5 * threat.eps / max(steps, 1)


def pgd(
    objective: Objective,
    x: Tensor,
    y: Tensor,
    threat: Threat,
    steps: int,
    restarts: int,
    generator: torch.Generator | None,
    step_size: float | None = None,
    random_start: bool = True,
) -> tuple[Tensor, Tensor]:
    """Adversarial examples (N×…) and whether each example was misclassified at some iterate (N,);
    `step_size` defaults to :func:`default_step_size`. The attack stops once every example is broken.
    Without `random_start` every restart is the same deterministic path, so one is enough."""
    size = step_size if step_size is not None else default_step_size(threat, steps)
    breaks = Breaks(objective, x, y)
    if threat.eps == 0:
        return breaks.result()
    for _ in range(restarts):
        for x_adv in iterates(objective, x, y, threat, steps, size, generator, random_start):
            if breaks.record(x_adv):
                return breaks.result()
    return breaks.result()
