"""The adversarial suite: robust accuracy of any method under PGD (ℓ∞, ℓ2) and APGD-CE, as a curve over
ε, with the sanity checks of Tramèr, Carlini, Brendel & Madry (NeurIPS 2020) reported beside it.

Add it to any run with ``data.suites=[adversarial]``; settings are ``data.adversarial`` (defaults in
:class:`AdversarialSettings`). The attacked function is the method's whole prediction (see
:mod:`trustbench.attacks.objective`), with EOT when it is stochastic. ε is in model-input units (pixel
units on MNIST-like data, which are not normalised). Keys, for the first ``points`` of a seeded
permutation of the test split (an example misclassified before the attack counts as broken):

- ``adv/pgd_linf/<ε>/acc``, ``adv/pgd_l2/<ε>/acc``, ``adv/apgd_ce/<ε>/acc`` (ℓ∞): robust accuracy ↑.
- ``adv/check/large_eps_acc``: PGD ℓ∞ robust accuracy at ``large_eps`` (the whole input range by default);
  ``adv/check/reaches_zero`` is 1 when it is 0, as it must be for an attack that works.
- ``adv/check/stronger_attack_acc``: robust accuracy at ``check_eps`` under the configured PGD ℓ∞ and a
  second one with ``check_factor`` × its steps and restarts together (an example broken by either counts);
  ``adv/check/stronger_attack_gain``, how much lower that is than the configured attack alone, and
  ``adv/check/converged``, 1 when the gain is at most ``tolerance``: more effort should not help.
- ``adv/check/stochastic`` (1 when two predictions of the same inputs differ) and
  ``adv/check/eot_samples``, the gradient samples averaged per step (1 for deterministic models).

Each check is also printed, one line, with its verdict. Plot: ``plots/adv_robust_accuracy.png``.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from trustbench.attacks.apgd import apgd
from trustbench.attacks.objective import Objective, is_stochastic
from trustbench.attacks.pgd import Threat, pgd
from trustbench.attacks.settings import AdversarialSettings
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.points import input_range, seeded_rows
from trustbench.plots.adversarial import robust_accuracy_curves

log = logging.getLogger("trustbench")


def evaluate_adversarial(context: EvaluationContext) -> dict[str, float]:
    """The metrics, checks and plot of the module docstring."""
    cfg, datamodule = context.cfg, context.datamodule
    settings = AdversarialSettings.from_config(cfg.data.get("adversarial"))
    module = context.module.eval()
    rows = seeded_rows(len(datamodule.x_test), settings.points, cfg.seed)
    x, y = datamodule.x_test[rows].to(module.device), datamodule.y_test[rows].to(module.device)

    def probabilities(inputs: Tensor) -> Tensor:
        return module.predict(inputs).probs

    stochastic = is_stochastic(probabilities, x[:8])
    objective = Objective(probabilities, settings.eot_samples if stochastic else 1, cfg.method.name)
    lower, upper = input_range(context)
    generator = torch.Generator().manual_seed(cfg.seed)

    def broken(attack: str, norm: str, eps: float, steps: int, restarts: int) -> Tensor:
        threat = Threat(norm, eps, lower.to(x.device), upper.to(x.device))
        run = apgd if attack == "apgd" else pgd
        return run(objective, x, y, threat, steps, restarts, generator)[1]

    def accuracy(fooled: Tensor) -> float:
        return 1.0 - fooled.float().mean().item()

    steps, restarts = settings.steps, settings.restarts
    attacks = {"pgd_linf": ("pgd", "linf", steps), "apgd_ce": ("apgd", "linf", settings.apgd_steps)}
    attacks["pgd_l2"] = ("pgd", "l2", steps)
    fooled = {
        (name, eps): broken(attack, norm, eps, attack_steps, restarts)
        for name, (attack, norm, attack_steps) in attacks.items()
        for eps in (settings.eps_l2 if norm == "l2" else settings.eps_linf)
    }
    curves: dict[str, dict[float, float]] = {}
    for (name, eps), mask in fooled.items():
        curves.setdefault(name, {})[eps] = accuracy(mask)
    metrics = {f"adv/{name}/{eps:g}/acc": accuracy(mask) for (name, eps), mask in fooled.items()}
    large = accuracy(broken("pgd", "linf", settings.large_eps, steps, restarts))
    configured = fooled.get(("pgd_linf", settings.check_eps))
    if configured is None:
        configured = broken("pgd", "linf", settings.check_eps, steps, restarts)
    factor = settings.check_factor
    # The stronger attack's examples join the configured attack's: robust accuracy under both of them.
    stronger = accuracy(
        configured | broken("pgd", "linf", settings.check_eps, steps * factor, restarts * factor)
    )
    gain = accuracy(configured) - stronger
    metrics |= {
        "adv/check/large_eps_acc": large,
        "adv/check/reaches_zero": float(large == 0.0),
        "adv/check/stronger_attack_acc": stronger,
        "adv/check/stronger_attack_gain": gain,
        "adv/check/converged": float(gain <= settings.tolerance),
        "adv/check/stochastic": float(stochastic),
        "adv/check/eot_samples": float(objective.eot_samples),
    }
    _print_checks(metrics, settings)
    title = (
        f"{cfg.method.name}, {len(x)} test points: PGD {settings.steps} steps × {settings.restarts} "
        f"restart(s), APGD-CE {settings.apgd_steps} steps"
    )
    path = context.run_dir / "plots" / "adv_robust_accuracy.png"
    context.draw(lambda: {"adv/robust_accuracy": robust_accuracy_curves(curves, path, title)})
    return metrics


def _print_checks(metrics: dict[str, float], settings: AdversarialSettings) -> None:
    verdict = {1.0: "ok", 0.0: "FAILED"}
    log.info(
        "adversarial check: PGD-linf robust accuracy at eps=%g is %.3f (must be 0): %s",
        settings.large_eps,
        metrics["adv/check/large_eps_acc"],
        verdict[metrics["adv/check/reaches_zero"]],
    )
    log.info(
        "adversarial check: %dx the steps and restarts at eps=%g lower robust accuracy by %.3f "
        "(at most %g expected): %s",
        settings.check_factor,
        settings.check_eps,
        metrics["adv/check/stronger_attack_gain"],
        settings.tolerance,
        verdict[metrics["adv/check/converged"]],
    )
    log.info(
        "adversarial check: the prediction is %s; gradients averaged over %d sample(s) per step (EOT)",
        "stochastic" if metrics["adv/check/stochastic"] else "deterministic",
        int(metrics["adv/check/eot_samples"]),
    )
