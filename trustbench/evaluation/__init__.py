"""Evaluation suites: one per kind of method, each a function of an EvaluationContext → metrics."""

from __future__ import annotations

from collections.abc import Callable

from trustbench.evaluation.adversarial import evaluate_adversarial
from trustbench.evaluation.annotations import evaluate_annotations
from trustbench.evaluation.classification import evaluate_classification
from trustbench.evaluation.concepts import evaluate_concepts
from trustbench.evaluation.confident_errors import evaluate_confident_errors
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.counterfactual import evaluate_counterfactual
from trustbench.evaluation.explanations import evaluate_explanations
from trustbench.evaluation.fairness import evaluate_fairness
from trustbench.evaluation.novelty import evaluate_novelty
from trustbench.evaluation.ood import evaluate_ood
from trustbench.evaluation.regression import evaluate_regression
from trustbench.evaluation.stress import evaluate_stress
from trustbench.evaluation.supervisors import evaluate_supervisors
from trustbench.evaluation.uncertainty import evaluate_uncertainty

Suite = Callable[[EvaluationContext], dict[str, float]]
SUITES: dict[str, Suite] = {
    "adversarial": evaluate_adversarial,
    "annotations": evaluate_annotations,
    "classification": evaluate_classification,
    "concepts": evaluate_concepts,
    "confident_errors": evaluate_confident_errors,
    "counterfactual": evaluate_counterfactual,
    "explanations": evaluate_explanations,
    "fairness": evaluate_fairness,
    "novelty": evaluate_novelty,
    "ood": evaluate_ood,
    "regression": evaluate_regression,
    "stress": evaluate_stress,
    "supervisors": evaluate_supervisors,
    "uncertainty": evaluate_uncertainty,
}


def evaluate(suite: str, context: EvaluationContext) -> dict[str, float]:
    """Run the named suite; unknown names list the valid ones."""
    if suite not in SUITES:
        raise ValueError(f"unknown evaluation suite {suite!r}; choose one of: {', '.join(sorted(SUITES))}")
    return SUITES[suite](context)
