"""Fairness evaluation: every group metric of :func:`fairness_report` on the test split, and a bar plot.

Runs for any method on data that names protected groups (the data config lists it in ``suites``), so a
debiasing method and its ERM baseline are scored by the same code on the same predictions. Hard
predictions are the argmax class (threshold 0.5 on P(Y = 1 | x)), scores are P(Y = 1 | x). Keys are
``fair/<attribute>/<metric>``, per group ``fair/<attribute>/<g>/<rate>``, and for the intersection of all
attributes ``fair/<a1>x<a2>/...`` (see :mod:`trustbench.metrics.fairness`).

Plot in ``<run_dir>/plots/fairness_groups.png`` (also logged to W&B): accuracy, TPR, FPR and selection
rate per group of every attribute and of their intersection.
"""

from __future__ import annotations

from trustbench.evaluation.context import EvaluationContext
from trustbench.metrics.fairness import fairness_report
from trustbench.plots.fairness import group_rate_bars
from trustbench.plots.figures import log_to_wandb


def evaluate_fairness(context: EvaluationContext) -> dict[str, float]:
    """The metrics and plot of the module docstring; a dataset without groups is refused."""
    datamodule = context.datamodule
    groups = datamodule.groups_test
    if not groups:
        raise ValueError(
            f"the fairness suite needs protected groups, but {context.dataset.name} has none; remove "
            "'fairness' from data.suites or use adult, compas, german, celeba or mnist_semi_random"
        )
    test = context.prediction("test", datamodule.x_test)
    report = fairness_report(datamodule.y_test, test.probs.argmax(dim=1), test.probs[:, 1], groups)
    title = f"{context.cfg.data.name} · {context.cfg.method.name}"
    path = group_rate_bars(report, context.run_dir / "plots" / "fairness_groups.png", title=title)
    log_to_wandb({"fair/groups": path})
    return report
