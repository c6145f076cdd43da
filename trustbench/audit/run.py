"""The body of `trustbench audit`: fit one model, run every member of the audit on it, summarise.

The model is fitted as `trustbench run` fits it (the same data, module, trainer and checkpoints), taken from
the model store when its recipe was trained before (and stored after training otherwise), or read from
`method.checkpoint`. Every member then reads the same weights through one shared evaluation context, and
the record names those weights by their content fingerprint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trustbench.audit.members import OK, Outcome, run_member
from trustbench.audit.plan import plan_members
from trustbench.audit.summary import log_tables_to_wandb, print_audit, summary_plots
from trustbench.config import data_kind
from trustbench.evaluation.context import EvaluationContext
from trustbench.experiment import fit
from trustbench.fingerprint import fingerprint_tensors
from trustbench.loggers import log_final
from trustbench.progress import progress

log = logging.getLogger("trustbench")


@dataclass
class AuditResult:
    """What the run record keeps of an audit: every member's metrics, each member's outcome, the weights."""

    metrics: dict[str, float]
    outcomes: dict[str, Outcome]
    weights: str

    def record_fields(self) -> dict[str, Any]:
        return {"families": {name: o.summary() for name, o in self.outcomes.items()}, "weights": self.weights}


def run_audit(cfg: DictConfig, run_dir: Path) -> AuditResult | None:
    """Fit the configured model once and run every audit member on it (None on DDP ranks other than 0)."""
    fitted = fit(cfg, run_dir, use_store=True)
    if fitted is None:
        return None
    weights = fingerprint_tensors(fitted.module.state_dict().items())
    context = EvaluationContext(cfg, fitted.module, fitted.datamodule, fitted.dataset, run_dir)
    members = plan_members(
        cfg,
        data_kind(cfg),
        fitted.dataset.num_classes,
        has_groups=bool(fitted.datamodule.groups_test),
        feature_dim=fitted.module.backbone.feature_dim,
    )
    outcomes: dict[str, Outcome] = {}
    metrics = dict(fitted.posthoc_metrics)
    for member in progress(members, "audit"):
        outcomes[member.name] = run_member(member, context, weights)
        metrics |= outcomes[member.name].metrics
    finished = sum(outcome.status == OK for outcome in outcomes.values())
    log.info("audit: %d of %d members finished on weights %s", finished, len(members), weights)
    summary_plots(metrics, outcomes, run_dir)
    log_final(fitted.loggers, metrics, fitted.step)
    log_tables_to_wandb(metrics, outcomes)
    print_audit(cfg, metrics, outcomes)
    return AuditResult(metrics, outcomes, weights)
