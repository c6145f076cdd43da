"""The smallest ℓ∞ perturbation that flips each input's prediction, over several attacks: the supervisor
benchmark's adversarial set (Weiss, García Gómez & Tonella, "Generating and detecting true ambiguity: a
forgotten danger in DNN supervision testing", EMSE 2023, ``supervisor_benchmark/adversarial_attack.py``).

Only inputs the model classifies correctly are attacked. DeepFool (:mod:`trustbench.attacks.deepfool`, ℓ∞)
runs first and gives each input it flips a continuous ε, the ℓ∞ size of its perturbation. Then, for each ε
of the grid in increasing order, FGSM, BIM (:mod:`trustbench.attacks.fgsm`) and PGD
(:mod:`trustbench.attacks.pgd`, random start, `steps` steps of 2.5·ε/steps) attack, in that order, the
inputs whose smallest flipping ε so far is larger than this one; an input a grid attack flips is kept at
that grid ε. So each kept input carries the smallest ε any attack reached, and the attack that reached it
first (DeepFool, then the cheaper grid attack, at a tie). Inputs no attack flips are dropped.

The reference gives each attack a quarter of the images and keeps, per image, the smallest ε of the grid
at which that one attack (foolbox's FGSM, LinfPGD, LinfBasicIterativeAttack, LinfDeepFoolAttack) succeeds;
here every image meets all four and keeps the smallest, which is what the set is meant to be (inputs just
across the boundary) and is never larger. DeepFool keeps its own ε rather than the grid's next value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from trustbench.attacks.deepfool import deepfool
from trustbench.attacks.fgsm import bim, fgsm
from trustbench.attacks.objective import Objective
from trustbench.attacks.pgd import Threat, pgd

ATTACKS = ("deepfool", "fgsm", "bim", "pgd")  # the order they run in, which breaks ties


@dataclass(frozen=True)
class MinimalAdversarial:
    """The kept inputs' adversarial versions (M×…), their ε (M,: the grid's ε, or DeepFool's ℓ∞ size), the
    attack that produced each, and their row indices into the attacked inputs (M,); all on the CPU."""

    inputs: Tensor
    eps: Tensor
    attacks: tuple[str, ...]
    rows: Tensor


def minimal_adversarial(
    objective: Objective,
    x: Tensor,
    y: Tensor,
    eps_grid: tuple[float, ...],
    steps: int,
    bounds: tuple[Tensor, Tensor],
    seed: int,
    attacks: tuple[str, ...] = ATTACKS,
) -> MinimalAdversarial:
    """The smallest-ε adversarial version of each row of `x` that `objective`'s model classifies correctly
    (module docstring), over `attacks` (a subset of :data:`ATTACKS`). `bounds` is the valid input range
    (lower, upper), broadcastable to `x`; `seed` draws PGD's random starts."""
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown:
        raise ValueError(f"unknown attack {', '.join(unknown)}; the attacks are {', '.join(ATTACKS)}")
    correct = (objective.predicted(x) == y).nonzero().squeeze(1)
    x, y = x[correct], y[correct]
    adversarial = x.clone()
    eps_found = torch.full((len(x),), float("inf"), device=x.device)
    attack_found = torch.full((len(x),), -1, dtype=torch.long)
    if "deepfool" in attacks and len(x):
        moved, fooled = deepfool(objective, x, y, "linf", bounds)
        adversarial[fooled] = moved[fooled]
        eps_found[fooled] = (moved - x)[fooled].flatten(1).abs().amax(dim=1)
        attack_found[fooled.cpu()] = ATTACKS.index("deepfool")
    generator = torch.Generator().manual_seed(seed)
    for eps in sorted(eps_grid):
        threat = Threat("linf", eps, *bounds)
        for name in [attack for attack in ATTACKS[1:] if attack in attacks]:
            todo = (eps_found > eps).nonzero().squeeze(1)
            if not len(todo):
                break
            attacked, fooled = _grid_attack(name, objective, x[todo], y[todo], threat, steps, generator)
            flipped = todo[fooled]
            adversarial[flipped], eps_found[flipped] = attacked[fooled], eps
            attack_found[flipped.cpu()] = ATTACKS.index(name)
    kept = eps_found.isfinite()
    return MinimalAdversarial(
        inputs=adversarial[kept].cpu(),
        eps=eps_found[kept].cpu(),
        attacks=tuple(ATTACKS[index] for index in attack_found[kept.cpu()].tolist()),
        rows=correct[kept].cpu(),
    )


def _grid_attack(
    name: str,
    objective: Objective,
    x: Tensor,
    y: Tensor,
    threat: Threat,
    steps: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """The adversarial examples and successes of FGSM, BIM or PGD at the threat's ε."""
    if name == "fgsm":
        return fgsm(objective, x, y, threat)
    if name == "bim":
        return bim(objective, x, y, threat, steps)
    return pgd(objective, x, y, threat, steps, 1, generator)
