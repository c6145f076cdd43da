"""The confident-errors suite: how many wrong predictions come with high confidence, whether another
uncertainty score catches them, and, on tabular data, who they are (see
:mod:`trustbench.metrics.confident_errors` for the definitions and their source).

Settings under ``data.confident_errors`` (all optional): ``thresholds`` (the τ grid of the rate curve,
default 0.6 ... 0.99), ``tau`` (the threshold of the AUROC and of the group description, default 0.9) and
``tree_depth`` (default 3). Metrics, on the test split, with the confidence max_k p_k:

- ``ce/<τ>/rate`` and ``ce/<τ>/share`` for every τ of the grid;
- ``ce/auroc/<score>``: the AUROC of each uncertainty score (the method's own ``uncertainty``, ``msp``,
  ``entropy``) for the confident errors among the predictions with confidence >= tau;
- tabular data only: a depth-3 tree describing the confident errors at tau (its rules, in the raw table's
  units, are logged and written to ``<run_dir>/confident_errors_tree.txt``), with ``ce/tree/precision``
  (share of the rows it flags that are confident errors), ``ce/tree/recall`` and ``ce/tree/coverage``
  (share of all rows flagged), the tree flagging no one when there are no confident errors; and, for
  every protected attribute and group g, ``ce/<attr>/<g>/rate`` (the confident-error rate within the
  group) and ``ce/<attr>/<g>/flagged`` (the share of the group the tree flags): how much the
  confident-error group overlaps the protected groups.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.subgroup_tree import describe_group
from trustbench.evaluation.uncertainty import failure_scores
from trustbench.metrics.confident_errors import (
    check_thresholds,
    confident_error_auroc,
    confident_error_rates,
    confident_errors,
    top_confidence,
)
from trustbench.results.record import write_atomically

log = logging.getLogger("trustbench")

DEFAULTS: dict[str, Any] = {"thresholds": [0.6, 0.7, 0.8, 0.9, 0.95, 0.99], "tau": 0.9, "tree_depth": 3}
TREE_FILE = "confident_errors_tree.txt"


def evaluate_confident_errors(context: EvaluationContext) -> dict[str, float]:
    """The metrics and the tree of the module docstring."""
    settings = {**DEFAULTS, **(context.cfg.data.get("confident_errors") or {})}
    thresholds = check_thresholds(settings["thresholds"], "data.confident_errors.thresholds")
    tau = check_thresholds([settings["tau"]], "data.confident_errors.tau")[0]
    datamodule = context.datamodule
    test = context.prediction("test", datamodule.x_test)
    correct = test.probs.argmax(dim=1) == datamodule.y_test
    confidence = top_confidence(test.probs)
    metrics: dict[str, float] = {}
    for threshold in thresholds:
        for key, value in confident_error_rates(confidence, correct, threshold).items():
            metrics[f"ce/{threshold:g}/{key}"] = value
    for score, values in failure_scores(test).items():
        metrics[f"ce/auroc/{score}"] = confident_error_auroc(values, confidence, correct, tau)
    flagged = confident_errors(confidence, correct, tau).numpy()
    meta = context.dataset.tabular
    if meta is None:
        return metrics
    tree_flags = np.zeros_like(flagged)  # no confident errors: nothing to describe, the tree flags no one
    header = f"confident errors (wrong with confidence >= {tau:g}): {int(flagged.sum())} of {len(flagged)}"
    if flagged.any():
        depth = int(settings["tree_depth"])
        description = describe_group(context.dataset.x_test, meta, flagged, depth, context.cfg.seed)
        tree_flags = description.flagged
        write_atomically(context.run_dir / TREE_FILE, f"{header}\n{description.rules}")
        log.info("%s; the depth-%d tree describing them:\n%s", header, depth, description.rules)
    else:
        log.info("%s", header)
    metrics |= _tree_overlap(tree_flags, flagged)
    return metrics | _group_overlap(datamodule.groups_test, flagged, tree_flags)


def _share(part: np.ndarray, whole: np.ndarray) -> float:
    """|part ∩ whole| / |whole|, NaN for an empty `whole`."""
    return float((part & whole).sum() / whole.sum()) if whole.any() else float("nan")


def _tree_overlap(tree_flags: np.ndarray, in_group: np.ndarray) -> dict[str, float]:
    return {
        "ce/tree/precision": _share(in_group, tree_flags),
        "ce/tree/recall": _share(tree_flags, in_group),
        "ce/tree/coverage": float(tree_flags.mean()),
    }


def _group_overlap(groups: dict, in_group: np.ndarray, tree_flags: np.ndarray) -> dict[str, float]:
    metrics = {}
    for attribute, values in groups.items():
        values = values.numpy()
        for group in np.unique(values):
            members = values == group
            metrics[f"ce/{attribute}/{group}/rate"] = float(in_group[members].mean())
            metrics[f"ce/{attribute}/{group}/flagged"] = float(tree_flags[members].mean())
    return metrics
