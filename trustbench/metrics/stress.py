"""A classifier's metrics on a weighted sample: the quantities the stress suite follows as a feature moves.

Every metric is a function of weighted sums Σ_i w_i a_i of per-row quantities a_i (correct or not, the
predicted class, the uncertainty, group membership, ...): :func:`row_quantities` tabulates the a_i once per
set of predictions, and :func:`weighted_metrics` turns any number of weight vectors into metrics with one
matrix product. Weights need not sum to 1 (they are normalised). With uniform weights each metric equals
its unweighted definition elsewhere in :mod:`trustbench.metrics`, and with integer weights it equals that
metric on the sample with each row repeated as often:

- ``acc``: weighted share of rows whose argmax class is the label;
- ``ece``: top-label ECE with the 15 equal-width bins of :func:`~trustbench.metrics.calibration.
  expected_calibration_error` (torchmetrics' bins, confidences of exactly 1.0 in a bin of their own),
  Σ_b |Σ_{i ∈ b} w_i (correct_i − confidence_i)| / Σ_i w_i;
- ``uncertainty``: weighted mean of the method's uncertainty score (higher = more uncertain, the score
  OOD detection thresholds);
- ``mean_prob``: weighted mean of P(Y = 1 | x) on a binary task (the influence curve of Bachoc et al.);
  ``mean_prob_<k>`` for every class k of a task with more classes;
- ``pos_rate``: weighted share of rows predicted class 1 (binary tasks);
- per binary protected attribute a on a binary task (S = 0 unprivileged, S = 1 privileged, as in
  :mod:`trustbench.metrics.fairness`): ``di_<a>`` = sel₀ / sel₁ (disparate impact; +inf when only the
  privileged rate is 0, NaN when both are), ``spd_<a>`` = sel₀ − sel₁, and ``eod_<a>`` =
  max(|TPR₀ − TPR₁|, |FPR₀ − FPR₁|) (fairlearn's equalised odds difference), each rate a ratio of
  weighted sums, NaN when its conditioning set has no weight. Attributes with more than two values are
  left out.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from trustbench.metrics.classification import check_probs_labels
from trustbench.metrics.fairness import check_binary

CALIBRATION_BINS = 15
GROUP_SUMS = ("members", "selected", "positives", "true_positives", "negatives", "false_positives")


@dataclass(frozen=True)
class RowQuantities:
    """Per-row quantities (n × m, float64) whose weighted sums give every metric; ``columns`` names them."""

    table: Tensor
    columns: dict[str, int]
    num_classes: int
    attributes: tuple[str, ...]

    def pooled(self, pool: Tensor, pools: int, base: Tensor) -> RowQuantities:
        """The ``base``-weighted mean quantities of the rows of each pool (``pool``: a pool id in
        [0, ``pools``) per row), e.g. the rows that share a feature value: weights over the pools then give
        the metrics of those weights shared by each pool's rows in proportion to ``base``. ``base`` may be
        a batch (B × n, e.g. bootstrap counts): the table is then B × pools × m."""
        batch = base.reshape(-1, base.shape[-1]).to(torch.float64)
        mass = torch.zeros(len(batch), pools, dtype=torch.float64).index_add_(1, pool, batch)
        order = torch.argsort(pool, stable=True)
        table, batch = self.table[order], batch[:, order]
        bounds = [0, *torch.bincount(pool, minlength=pools).cumsum(0).tolist()]
        # one small matrix product per pool: no B × n × m weighted copy of the table, as an index_add needs
        sums = torch.stack([batch[:, a:b] @ table[a:b] for a, b in itertools.pairwise(bounds)], dim=1)
        means = sums / mass.clamp_min(torch.finfo(torch.float64).tiny)[..., None]
        return replace(self, table=means.reshape(*base.shape[:-1], pools, self.table.shape[1]))

    def metric_names(self) -> tuple[str, ...]:
        """The keys :func:`weighted_metrics` returns, in a fixed order."""
        if self.num_classes == 2:
            predictions = ("mean_prob", "pos_rate")
        else:
            predictions = tuple(f"mean_prob_{k}" for k in range(self.num_classes))
        fairness = tuple(f"{m}_{a}" for a in self.attributes for m in ("di", "spd", "eod"))
        return ("acc", "ece", "uncertainty", *predictions, *fairness)


def row_quantities(
    probs: Tensor, uncertainty: Tensor, labels: Tensor, groups: dict[str, Tensor] | None = None
) -> RowQuantities:
    """Tabulate the quantities of the module docstring for predictions ``probs`` (n × K) and ``uncertainty``
    (n) against ``labels`` (n); ``groups`` maps attribute names to 0/1 tensors (n), used on binary tasks."""
    probs, labels = check_probs_labels(probs, labels)
    if uncertainty.shape != labels.shape:
        raise ValueError(
            f"uncertainty must hold one score per row ({len(labels)}); got {tuple(uncertainty.shape)}"
        )
    confidence, predicted = probs.max(dim=1).values, probs.argmax(dim=1)  # ties: lowest class, as accuracy
    correct = (predicted == labels).to(torch.float64)
    columns: dict[str, Tensor] = {"correct": correct, "uncertainty": uncertainty.to(torch.float64)}
    edges = torch.linspace(0, 1, CALIBRATION_BINS + 1, dtype=torch.float32)
    calibration_bin = torch.bucketize(confidence.to(torch.float32), edges, right=True) - 1
    for b in range(CALIBRATION_BINS + 1):
        columns[f"gap_{b}"] = torch.where(calibration_bin == b, correct - confidence, 0.0)
    attributes: list[str] = []
    num_classes = probs.shape[1]
    if num_classes == 2:
        columns["prob_1"] = probs[:, 1]
        selected = (predicted == 1).to(torch.float64)
        columns["selected"] = selected
        positive = labels.to(torch.float64)
        for attribute, group in (groups or {}).items():
            if not ((group == 0) | (group == 1)).all():
                continue
            member = check_binary(attribute, group, len(labels)).to(torch.float64)
            for value, in_group in ((0, 1 - member), (1, member)):
                sums = (1.0, selected, positive, selected * positive, 1 - positive, selected * (1 - positive))
                for name, quantity in zip(GROUP_SUMS, sums, strict=True):
                    columns[f"{attribute}/{value}/{name}"] = in_group * quantity
            attributes.append(attribute)
    else:
        columns |= {f"prob_{k}": probs[:, k] for k in range(num_classes)}
    table = torch.stack([c.to(torch.float64).expand(len(labels)) for c in columns.values()], dim=1)
    return RowQuantities(table, {name: i for i, name in enumerate(columns)}, num_classes, tuple(attributes))


def weighted_metrics(weights: Tensor, rows: RowQuantities) -> dict[str, Tensor]:
    """Every metric of the module docstring for each weight vector: ``weights`` (..., n) → values (...).

    A batch of tables (B × n × m, from :meth:`RowQuantities.pooled`) takes weights (B × ... × n)."""
    rows_per_table = rows.table.shape[-2]
    if weights.shape[-1] != rows_per_table:
        raise ValueError(
            f"weights must end with one entry per row ({rows_per_table}); got {tuple(weights.shape)}"
        )
    weights = weights.to(torch.float64)
    tables = rows.table.reshape(
        *rows.table.shape[:-2], *[1] * (weights.ndim - rows.table.ndim + 1), *rows.table.shape[-2:]
    )
    sums = (weights.unsqueeze(-2) @ tables).squeeze(-2) / weights.sum(dim=-1, keepdim=True)

    def total(name: str) -> Tensor:
        return sums[..., rows.columns[name]]

    gaps = [total(f"gap_{b}") for b in range(CALIBRATION_BINS + 1)]
    metrics = {
        "acc": total("correct"),
        "ece": torch.stack(gaps, dim=-1).abs().sum(dim=-1),
        "uncertainty": total("uncertainty"),
    }
    if rows.num_classes == 2:
        metrics |= {"mean_prob": total("prob_1"), "pos_rate": total("selected")}
    else:
        metrics |= {f"mean_prob_{k}": total(f"prob_{k}") for k in range(rows.num_classes)}
    for attribute in rows.attributes:
        rates = [_group_rates(total, attribute, value) for value in (0, 1)]
        (sel0, tpr0, fpr0), (sel1, tpr1, fpr1) = rates
        ratio = torch.where(sel1 > 0, sel0 / sel1, torch.where(sel0 > 0, torch.inf, torch.nan))
        metrics |= {
            f"di_{attribute}": torch.where(sel1.isnan() | sel0.isnan(), torch.nan, ratio),
            f"spd_{attribute}": sel0 - sel1,
            f"eod_{attribute}": torch.maximum((tpr0 - tpr1).abs(), (fpr0 - fpr1).abs()),
        }
    return metrics


def _group_rates(total, attribute: str, value: int) -> tuple[Tensor, Tensor, Tensor]:
    """Selection rate, TPR and FPR of the rows with ``attribute`` = ``value``, NaN where undefined."""

    def rate(hits: str, among: str) -> Tensor:
        denominator = total(f"{attribute}/{value}/{among}")
        return torch.where(denominator > 0, total(f"{attribute}/{value}/{hits}") / denominator, torch.nan)

    return (
        rate("selected", "members"),
        rate("true_positives", "positives"),
        rate("false_positives", "negatives"),
    )
