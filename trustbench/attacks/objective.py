"""What every attack maximises: the cross-entropy of the whole defended pipeline, with its gradient (and
for DeepFool the gaps between classes' log-probabilities, with theirs).

Following Tramèr, Carlini, Brendel & Madry ("On Adaptive Attacks to Adversarial Example Defenses",
NeurIPS 2020), the attack differentiates the method's own `predict` end to end (ensembles, MC dropout,
DUQ's kernel, a temperature), not a stand-in network, and for a stochastic prediction (MC dropout
sampling) averages the gradient over `eot_samples` draws (expectation over transformation, Athalye et al.
ICML 2018). A prediction that cannot be differentiated stops with one line naming the method; BPDA
(a differentiable stand-in for a non-differentiable step) is not implemented.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from trustbench.errors import ConfigError

Probabilities = Callable[[Tensor], Tensor]


class Objective:
    """Cross-entropy −log p_y(x) of a probability-valued model and its input gradient, per example."""

    def __init__(self, probabilities: Probabilities, eot_samples: int = 1, name: str = "model") -> None:
        self.probabilities, self.eot_samples, self.name = probabilities, eot_samples, name

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """−log p_y(x) per example (N,), probabilities clamped at 1e-12."""
        probs = self.probabilities(x)
        return -probs.gather(1, y[:, None]).squeeze(1).clamp_min(1e-12).log()

    def gradient(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The loss (N,) and its gradient in x, each the mean over `eot_samples` draws of the model."""
        losses, grads = [], []
        for _ in range(self.eot_samples):
            inputs = x.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = self.loss(inputs, y)
                self._check_differentiable(loss)
                (grad,) = torch.autograd.grad(loss.sum(), inputs)
            losses.append(loss.detach())
            grads.append(grad)
        return torch.stack(losses).mean(0), torch.stack(grads).mean(0)

    def class_gaps(self, x: Tensor, classes: Tensor) -> tuple[Tensor, Tensor]:
        """log p_k(x) − log p_c(x) for c = ``classes[:, 0]`` and each k in ``classes[:, 1:]`` (N×(K−1)), and
        their input gradients (N×(K−1)×…), each the mean over `eot_samples` draws of the model. For one
        softmax these are the logit differences DeepFool linearises; probabilities are clamped at the
        smallest normal float, so a class below it has a zero gradient (and is never the closest)."""
        gaps, grads = [], []
        for _ in range(self.eot_samples):
            inputs = x.detach().requires_grad_(True)
            with torch.enable_grad():
                log_probs = self.probabilities(inputs).clamp_min(torch.finfo(x.dtype).tiny).log()
                chosen = log_probs.gather(1, classes)
                gap = chosen[:, 1:] - chosen[:, :1]
                self._check_differentiable(gap)
                columns = [
                    torch.autograd.grad(gap[:, k].sum(), inputs, retain_graph=k < gap.shape[1] - 1)[0]
                    for k in range(gap.shape[1])
                ]
            gaps.append(gap.detach())
            grads.append(torch.stack(columns, dim=1))
        return torch.stack(gaps).mean(0), torch.stack(grads).mean(0)

    def _check_differentiable(self, value: Tensor) -> None:
        if not value.requires_grad:
            raise ConfigError(
                f"the prediction of {self.name} is not differentiable in its input, so gradient "
                "attacks cannot reach it (BPDA is not implemented); evaluate another method"
            )

    @torch.no_grad()
    def predicted(self, x: Tensor) -> Tensor:
        return self.probabilities(x).argmax(dim=1)


class Breaks:
    """What an attack found so far: for each example the first misclassified input it reached (the input
    itself while none), and whether one was reached. Both attacks count any iterate of any restart."""

    def __init__(self, objective: Objective, x: Tensor, y: Tensor) -> None:
        self.objective, self.y = objective, y
        self.best, self.fooled = x.clone(), objective.predicted(x) != y

    def record(self, x_adv: Tensor) -> bool:
        """Note the examples `x_adv` misclassifies; True once every example is broken."""
        wrong = self.objective.predicted(x_adv) != self.y
        newly = wrong & ~self.fooled
        self.best[newly] = x_adv[newly]
        self.fooled |= wrong
        return bool(self.fooled.all())

    def result(self) -> tuple[Tensor, Tensor]:
        return self.best, self.fooled


def is_stochastic(probabilities: Probabilities, x: Tensor) -> bool:
    """True when two predictions of the same inputs differ (MC dropout sampling at test time)."""
    with torch.no_grad():
        return not torch.equal(probabilities(x), probabilities(x))
