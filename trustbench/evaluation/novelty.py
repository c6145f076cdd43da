"""One-class novelty evaluation: the novelty score on the normal class's test images against each OOD set.

A one-class method (trustbench/methods/novelty/) is trained on one class of a dataset (a one-class split,
``data=novelty_mnist data.class_split=3``); the test split holds that class's test images and the OOD set
``unknown`` every other class's. Metrics: ``ood/<set>/{auroc,aupr_in,aupr_out,fpr95}`` of the method's
score with the novel inputs positive (:mod:`trustbench.metrics.ood`), for each set of ``data.ood``; the
protocol of Ruff et al. (ICML 2018) reports the AUROC, averaged over the classes by the experiment's table.
Classification metrics are left out: a one-class model has no classes to get right.
"""

from __future__ import annotations

from trustbench.errors import ConfigError
from trustbench.evaluation.classification import uncertainty_ood_metrics
from trustbench.evaluation.context import EvaluationContext


def evaluate_novelty(context: EvaluationContext) -> dict[str, float]:
    """The metrics of the module docstring; data without OOD sets is refused."""
    if not context.cfg.data.get("ood"):
        raise ConfigError(
            f"the novelty suite scores OOD sets, but data {context.cfg.data.name!r} lists none in data.ood; "
            "use data=novelty_mnist or data=novelty_fashion_mnist"
        )
    test = context.prediction("test", context.datamodule.x_test)
    return uncertainty_ood_metrics(context, test.uncertainty)
