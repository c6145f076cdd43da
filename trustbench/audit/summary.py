"""An audit at a glance: one row per detector or explainer with its headline numbers, for the console,
the report and W&B, and a bar chart of every detector's near and far AUROC.

Rows are built from the metrics and the per-member outcomes as result.json records them
(`families: {name: {status, error, seconds}}`), so `trustbench report` rebuilds them from disk.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from trustbench.plots.audit import detector_auroc_bars
from trustbench.plots.figures import log_to_wandb

# Family -> (headline metric of each member, relative to `<family>/<member>/`), in display order.
MEMBER_COLUMNS: dict[str, tuple[str, ...]] = {
    "ood": ("near/auroc", "far/auroc", "near/fpr95", "far/fpr95", "val/auroc"),
    "cf": ("validity", "l0", "l1", "l2", "ynn", "diversity", "seconds_per_cf"),
    "xai": (
        "deletion_auc",
        "insertion_auc",
        "randomisation_spearman",
        "max_sensitivity",
        "topk_intersection",
        "seconds_per_map",
    ),
}
# Keys of the method's own suite and fairness worth a line in the console summary.
HEADLINE_PREFIXES = ("cls/", "cal/ece", "sc/aurc")
DETECTOR_PLOT = Path("plots") / "ood" / "detectors_auroc.png"


def member_rows(metrics: Mapping[str, float], families: Mapping[str, Any], family: str) -> dict[str, Any]:
    """{columns, rows} of `family`'s members: each row has the member, its status and error, and one value
    per column (NaN when absent). Columns no member reports are left out."""
    names = [name for name in families if name.startswith(f"{family}/")]
    columns = [c for c in MEMBER_COLUMNS.get(family, ()) if any(f"{n}/{c}" in metrics for n in names)]
    rows = []
    for name in names:
        outcome = families[name] if isinstance(families[name], Mapping) else {}
        rows.append(
            {
                "member": name.split("/", 1)[1],
                "status": outcome.get("status", "ok"),
                "error": outcome.get("error"),
                "seconds": outcome.get("seconds"),
                "values": [metrics.get(f"{name}/{c}", math.nan) for c in columns],
            }
        )
    return {"columns": columns, "rows": rows}


def summary_plots(metrics: Mapping[str, float], outcomes: Mapping[str, Any], run_dir: Path) -> None:
    """The detectors' AUROC bar chart, when the audit scored at least one detector (also to W&B)."""
    table = member_rows(metrics, _summaries(outcomes), "ood")
    scored = {
        row["member"]: (
            metrics.get(f"ood/{row['member']}/near/auroc"),
            metrics.get(f"ood/{row['member']}/far/auroc"),
        )
        for row in table["rows"]
        if row["status"] == "ok"
    }
    if scored:
        log_to_wandb({"audit/detectors_auroc": detector_auroc_bars(scored, run_dir / DETECTOR_PLOT)})


def log_tables_to_wandb(metrics: Mapping[str, float], outcomes: Mapping[str, Any]) -> None:
    """Each family's member table, and every metric with its convention, as W&B Tables of the active run."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    from trustbench.report.conventions import describe

    families = _summaries(outcomes)
    tables = {
        "audit/metrics": wandb.Table(
            columns=["metric", "value", "meaning"],
            data=[[k, v, describe(k)] for k, v in sorted(metrics.items())],
        ),
        "audit/members": wandb.Table(
            columns=["member", "status", "error", "seconds"],
            data=[[n, f["status"], f["error"] or "", f["seconds"]] for n, f in families.items()],
        ),
    }
    for family in MEMBER_COLUMNS:
        table = member_rows(metrics, families, family)
        if table["rows"]:
            tables[f"audit/{family}"] = wandb.Table(
                columns=["member", "status", *table["columns"]],
                data=[[r["member"], r["status"], *r["values"]] for r in table["rows"]],
            )
    wandb.log(tables)


def print_audit(cfg: DictConfig, metrics: Mapping[str, float], outcomes: Mapping[str, Any]) -> None:
    """The audit's headline numbers, one table per member family, and every member that did not finish."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    families = _summaries(outcomes)
    headline = Table(
        title=f"audit · {cfg.data.name} · {cfg.backbone.name} · {cfg.method.name} · seed {cfg.seed}"
    )
    headline.add_column("metric")
    headline.add_column("value", justify="right")
    for key in sorted(k for k in metrics if k.startswith(HEADLINE_PREFIXES) or _is_fairness_headline(k)):
        headline.add_row(key, f"{metrics[key]:.4f}")
    console.print(headline)
    for family in MEMBER_COLUMNS:
        table = member_rows(metrics, families, family)
        if not any(row["status"] == "ok" for row in table["rows"]):
            continue
        members = Table(title=f"{family}: one row per member")
        for column in ("member", *table["columns"]):
            members.add_column(column, justify="left" if column == "member" else "right")
        for row in table["rows"]:
            if row["status"] == "ok":
                members.add_row(row["member"], *(_cell(v) for v in row["values"]))
        console.print(members)
    unfinished: dict[tuple[str, str], list[str]] = {}
    for name, outcome in families.items():
        if outcome["status"] != "ok":
            unfinished.setdefault((outcome["status"], outcome["error"] or ""), []).append(name)
    for (status, reason), names in unfinished.items():  # one line per reason, not per member
        console.print(f"{status}: {', '.join(names)}: {reason}", soft_wrap=True)


def _is_fairness_headline(key: str) -> bool:
    parts = key.split("/")
    return parts[0] == "fair" and len(parts) == 3 and parts[2] in ("dpd", "eod", "di")


def _summaries(outcomes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: o.summary() if hasattr(o, "summary") else dict(o) for name, o in outcomes.items()}


def _cell(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"
