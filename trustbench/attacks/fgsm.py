"""The fast gradient sign method and its iteration, the basic iterative method, both as PGD without a
random start (:func:`trustbench.attacks.pgd.pgd`), on the method's whole prediction (:class:`Objective`).

- FGSM (Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015):
  x′ = clip(x + ε·sign(∇ₓ L(x, y))), one step the size of the ball; ℓ2 (the fast gradient method) steps
  ε along the normalised gradient instead.
- BIM (Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", ICLR workshop 2017):
  `steps` such steps of size α from the clean input, each clipped to the ε-ball and the input range.
  Kurakin et al. take α = 1/255 and min(ε·255 + 4, 1.25·ε·255) steps; the default here is foolbox's
  ``LinfBasicIterativeAttack`` (α = 0.2·ε), which the supervisor benchmark's reference ran.

Departs from foolbox in what counts as broken: like every attack here an example is broken when any iterate
is misclassified (foolbox checks only the last one), so these attacks are never weaker than foolbox's.
"""

from __future__ import annotations

from torch import Tensor

from trustbench.attacks.objective import Objective
from trustbench.attacks.pgd import Threat, pgd

BIM_RELATIVE_STEP = 0.2  # foolbox's rel_stepsize of LinfBasicIterativeAttack: α = 0.2·ε


def fgsm(objective: Objective, x: Tensor, y: Tensor, threat: Threat) -> tuple[Tensor, Tensor]:
    """One signed-gradient (ℓ2: normalised-gradient) step of size ε from each input: the adversarial
    examples (N×…) and whether each is misclassified (N,)."""
    return pgd(objective, x, y, threat, 1, 1, None, step_size=threat.eps, random_start=False)


def bim(
    objective: Objective, x: Tensor, y: Tensor, threat: Threat, steps: int, step_size: float | None = None
) -> tuple[Tensor, Tensor]:
    """`steps` projected steps of `step_size` (default ``BIM_RELATIVE_STEP``·ε) from the clean inputs:
    the adversarial examples (N×…) and whether each was misclassified at some iterate (N,)."""
    size = step_size if step_size is not None else BIM_RELATIVE_STEP * threat.eps
    return pgd(objective, x, y, threat, steps, 1, None, step_size=size, random_start=False)
