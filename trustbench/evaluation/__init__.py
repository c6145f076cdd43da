"""Evaluation suites: one per kind of method, each a function of an EvaluationContext → metrics.

A suite's module is imported when a run first evaluates it, not when the run starts: the suites pull in
scikit-learn, the explainers and more, which a run on MNIST would otherwise import before its first
training step for suites it never uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trustbench.evaluation.context import EvaluationContext

Suite = Callable[["EvaluationContext"], dict[str, float]]
# Each suite is the function evaluate_<name> of the module trustbench.evaluation.<name>.
SUITES = (
    "adversarial",
    "annotations",
    "classification",
    "concepts",
    "confident_errors",
    "counterfactual",
    "explanations",
    "fairness",
    "novelty",
    "ood",
    "regression",
    "stress",
    "supervisors",
    "uncertainty",
)


def suite_function(suite: str) -> Suite:
    """The function of the named suite (importing its module); unknown names list the valid ones."""
    if suite not in SUITES:
        raise ValueError(f"unknown evaluation suite {suite!r}; choose one of: {', '.join(sorted(SUITES))}")
    return getattr(importlib.import_module(f"trustbench.evaluation.{suite}"), f"evaluate_{suite}")


def evaluate(suite: str, context: EvaluationContext) -> dict[str, float]:
    """Run the named suite."""
    return suite_function(suite)(context)
