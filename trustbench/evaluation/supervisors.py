"""The supervisor suite: which supervisor catches which kind of non-nominal input.

After Weiss, García Gómez & Tonella ("Generating and detecting true ambiguity: a forgotten danger in DNN
supervision testing", EMSE 2023): the run's supervisors (:mod:`trustbench.evaluation.supervisor_scores`)
score the nominal test set and four non-nominal sets (ambiguous, invalid, corrupted, adversarial:
:mod:`trustbench.evaluation.supervisor_sets`), and each supervisor's AUROC separates one non-nominal set
from the nominal one. Add it with ``data.suites=[supervisors]`` and ``data.supervisors.invalid=<dataset>``;
``experiment=supervisors_mnist`` sweeps the methods and prints the table (rows supervisors, columns sets).

Keys:

- ``sup/<supervisor>/<set>/auroc``: the non-nominal set positive, higher score = flagged, ties one half
  (:func:`trustbench.metrics.ood.ood_metrics`); 0.5 is chance, below it the supervisor flags nominal
  inputs more than these.
- ``sup/<set>/size``: inputs in each set (the adversarial set keeps only the images an attack flips);
  ``sup/adversarial/mean_eps`` and ``median_eps``: the mean and median smallest flipping ℓ∞ ε of the kept
  images; ``sup/adversarial/share_<attack>``: the share of them each attack (deepfool, fgsm, bim, pgd)
  produced (:mod:`trustbench.attacks.minimal`).
- ``sup/ambiguous/class_accuracy`` and ``sup/ambiguous/real_fake_accuracy``: the rAAEs' acceptance
  numbers, averaged over pairs (the reference keeps rAAEs with at least 0.9 and within (0.4, 0.6)).
- ``sup/nominal/acc``: the model's accuracy on the nominal set.

Plot: ``plots/ambiguous_inputs.png``, a grid of the ambiguous inputs with their probabilistic labels.
"""

from __future__ import annotations

import torch

from trustbench.attacks.minimal import ATTACKS
from trustbench.evaluation.context import EvaluationContext, predict_all
from trustbench.evaluation.supervisor_scores import method_supervisor, posthoc_supervisor
from trustbench.evaluation.supervisor_sets import SupervisorSets, SupervisorSettings, build_supervisor_sets
from trustbench.metrics.ood import ood_metrics
from trustbench.plots.supervisors import ambiguous_grid


def evaluate_supervisors(context: EvaluationContext) -> dict[str, float]:
    """Every supervisor's AUROC on each non-nominal set against the nominal set (module docstring)."""
    cfg = context.cfg
    settings = SupervisorSettings.from_config(cfg.data.get("supervisors"))
    sets = build_supervisor_sets(context, settings)
    supervisors = [method_supervisor(context)]
    if cfg.method.name in settings.posthoc_for:
        supervisors.append(posthoc_supervisor(context, settings))

    def scores(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: value for supervisor in supervisors for name, value in supervisor(x).items()}

    nominal = scores(sets.nominal)
    metrics: dict[str, float] = {}
    for set_name, x in sets.non_nominal.items():
        metrics[f"sup/{set_name}/size"] = float(len(x))
        if not len(x):
            continue
        for supervisor, flagged in scores(x).items():
            metrics[f"sup/{supervisor}/{set_name}/auroc"] = ood_metrics(nominal[supervisor], flagged)["auroc"]
    metrics |= _set_facts(context, sets)
    path = context.run_dir / "plots" / "ambiguous_inputs.png"
    images, soft_labels = sets.ambiguous.images, sets.ambiguous.soft_labels
    context.draw(lambda: {"sup/ambiguous_inputs": ambiguous_grid(images, soft_labels, path)})
    return metrics


def _set_facts(context: EvaluationContext, sets: SupervisorSets) -> dict[str, float]:
    """What the sets are made of: the nominal accuracy, the adversarial ε and the rAAEs' quality."""
    probs = predict_all(context.module, sets.nominal, context.datamodule.eval_batch_size).probs
    quality = list(sets.ambiguous.quality.values())
    facts = {
        "sup/nominal/size": float(len(sets.nominal)),
        "sup/nominal/acc": float((probs.argmax(dim=1) == sets.nominal_labels).float().mean()),
        "sup/ambiguous/class_accuracy": sum(q.class_accuracy for q in quality) / len(quality),
        "sup/ambiguous/real_fake_accuracy": sum(q.real_fake_accuracy for q in quality) / len(quality),
    }
    if len(sets.adversarial_eps):
        facts["sup/adversarial/mean_eps"] = float(sets.adversarial_eps.mean())
        facts["sup/adversarial/median_eps"] = float(sets.adversarial_eps.quantile(0.5))
        for attack in ATTACKS:
            share = sets.adversarial_attacks.count(attack) / len(sets.adversarial_attacks)
            facts[f"sup/adversarial/share_{attack}"] = share
    return facts
