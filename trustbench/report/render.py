"""Render `report.html` from run or sweep directories on disk, one self-contained page.

One run (a directory holding run_config.yaml) gives a section per metric family (the key's first segment:
`cls`, `cal`, `ood`, `fair`, `cf`, ...) with its numbers, their conventions (report/conventions.py), the
paper's numbers where the experiment config carries a `paper:` block, and the family's plots from plots/
embedded as base64 PNG data URIs, so the page needs no network or neighbouring files. Then the config and,
when the record holds them, the weights fingerprint (`weights`) and per-family outcomes (`families`:
{name: {status, error}}; a failed family shows its one-line reason). An audit's members (`ood/knn`,
`cf/dice`: result.json's `families`) get a table of their headline numbers in their family's section
(trustbench/audit/summary.py), their own plots (from `families/<member>/plots/`, folded away) and, for
tabular counterfactuals, the changed features in original units; the full list of keys is folded too.
Several runs (a sweep) give the `trustbench table` view (results/table.py: mean ± std per group, paper
rows beside ours), one table per family, and the failed runs with their reasons.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from trustbench.audit.summary import member_rows
from trustbench.report.conventions import describe, family_of_key, family_of_plot, family_order, family_title
from trustbench.results.record import CONFIG_FILE, read_result
from trustbench.results.table import _cell, collect_runs, config_value, select_metrics, summarize

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
DIGITS = 4
TITLE_KEYS = ("method", "data", "backbone")
MEMBERS_DIR = "families"
CHANGED_FEATURES = "cf_changed_features.csv"
CHANGED_ROWS_SHOWN = 12


def render_report(paths: Sequence[Path], by: Sequence[str] = ("method", "data")) -> str:
    """The report page of the runs under `paths`: a run view for one run, a sweep view for several."""
    runs = collect_runs(paths, by)
    if runs.empty:
        raise ValueError(
            f"no runs found under {', '.join(map(str, paths))} (a run directory holds {CONFIG_FILE})"
        )
    environment = Environment(
        loader=PackageLoader("trustbench.report", "templates"), autoescape=select_autoescape(["j2", "html"])
    )
    if len(runs) == 1:
        page = _run_page(Path(runs["run_dir"].iloc[0]), runs.iloc[0])
    else:
        page = _sweep_page(runs, list(by))
    return environment.get_template("report.html.j2").render(**page)


def write_report(
    paths: Sequence[Path], out: Path | None = None, by: Sequence[str] = ("method", "data")
) -> Path:
    """Render the report and write it to `out` (default: report.html in the first path)."""
    out = out if out is not None else Path(paths[0]) / REPORT_FILE
    html = render_report(paths, by)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def _run_page(run_dir: Path, run: pd.Series) -> dict[str, Any]:
    record = _record_or_empty(run_dir)
    config = record.get("config") or {}
    paper = config.get("paper") if isinstance(config.get("paper"), dict) else {}
    paper_metrics = paper.get("metrics", {}) if paper else {}
    metrics = {k: v for k, v in (record.get("metrics") or {}).items() if isinstance(v, int | float)}
    plots = _plots(run_dir / PLOTS_DIR)
    outcomes = {
        name: outcome for name, outcome in (record.get("families") or {}).items() if isinstance(outcome, dict)
    }
    names = {family_of_key(k) for k in metrics} | {family_of_key(k) for k in paper_metrics}
    names |= set(plots) | {family_of_key(name) for name, o in outcomes.items() if o.get("status") != "ok"}
    sections = []
    for family in family_order(names):
        keys = sorted({k for k in [*metrics, *paper_metrics] if family_of_key(k) == family})
        members = member_rows(metrics, outcomes, family)
        rows = [
            {
                "key": key,
                "ours": _number(metrics.get(key)),
                "paper": _number(paper_metrics.get(key)) if key in paper_metrics else None,
                "meaning": describe(key),
            }
            for key in keys
        ]
        sections.append(
            {
                "id": f"family-{family}",
                "title": family_title(family),
                "family": family,
                **_family_status(family, outcomes),
                # With members, their table is the headline and every key is folded; else keys deeper
                # than family/subject/metric (per group, per cell) are folded below the headline ones.
                "rows": [] if members["rows"] else [r for r in rows if r["key"].count("/") < 3],
                "detail_rows": rows if members["rows"] else [r for r in rows if r["key"].count("/") >= 3],
                "members": _member_table(members),
                "plots": plots.get(family, []),
                "member_plots": _member_plots(run_dir, family, members),
                "changed_features": _changed_features(run_dir, family, members),
            }
        )
    return {
        "kind": "run",
        "title": _run_title(config, run_dir),
        "run_dir": str(run_dir),
        "status": run["status"],
        "error": _first_line(run.get("error")),
        "duration": record.get("duration_s"),
        "citation": paper.get("citation") if paper else None,
        "sections": sections,
        "weights": record.get("weights"),
        "config": _config_text(run_dir),
    }


def _sweep_page(runs: pd.DataFrame, by: list[str]) -> dict[str, Any]:
    summary = summarize(runs, by)
    chosen = select_metrics(runs.columns, None)
    sections = []
    for family in family_order({family_of_key(k) for k in chosen}):
        columns = [k for k in chosen if family_of_key(k) == family]
        rows = [
            {
                "keys": [_label(row[key]) for key in by],
                "source": row["source"],
                "runs": int(row["runs"]),
                "failed": int(row["failed"]),
                "cells": [_cell(row[c], row.get(f"{c} std", math.nan), DIGITS, "md") for c in columns],
            }
            for _, row in summary.iterrows()
        ]
        sections.append(
            {
                "id": f"family-{family}",
                "title": family_title(family),
                "family": family,
                "columns": [{"key": c, "meaning": describe(c)} for c in columns],
                "rows": rows,
            }
        )
    failed = runs[runs["status"] != "ok"]
    return {
        "kind": "sweep",
        "title": f"{len(runs)} runs",
        "by": by,
        "sections": sections,
        "total": len(runs),
        "failed_runs": [
            {"run_dir": r.run_dir, "status": r.status, "error": _first_line(r.error)}
            for r in failed.itertuples()
        ],
    }


def _run_title(config: dict[str, Any], run_dir: Path) -> str:
    """'method · data · backbone' of the run's config, else the directory's name."""
    names = [config_value(config, key) for key in TITLE_KEYS]
    return " · ".join(str(name) for name in names if name is not None) or run_dir.name


def _family_status(family: str, outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A section's badge and reasons: "failed" when every run of its family failed, "partial" when some
    did; each member that failed or was skipped is listed with its one-line reason."""
    own = {name: o for name, o in outcomes.items() if family_of_key(name) == family}
    failed = [name for name, o in own.items() if o.get("status") == "failed"]
    status = "ok"
    if failed:
        status = (
            "failed" if len(failed) == sum(o.get("status") != "skipped" for o in own.values()) else "partial"
        )
    by_reason: dict[tuple[str, str], list[str]] = {}  # one line per reason, not one per member
    for name, o in own.items():
        if o.get("status") in ("failed", "skipped"):
            by_reason.setdefault((o["status"], _first_line(o.get("error")) or ""), []).append(name)
    notes = [
        {"member": ", ".join(names), "status": status, "reason": reason}
        for (status, reason), names in by_reason.items()
    ]
    single = own.get(family, {})
    if own and all(o.get("status") == "skipped" for o in own.values()):  # the family does not apply
        return {"status": "skipped", "error": None, "notes": notes}
    return {
        "status": status,
        "error": _first_line(single.get("error")),
        "notes": notes if len(own) > 1 else [],
    }


def _member_table(members: dict[str, Any]) -> dict[str, Any] | None:
    rows = [r for r in members["rows"] if r["status"] == "ok"]
    if not rows:
        return None
    return {
        "columns": [{"key": c, "meaning": describe(f"x/{c}")} for c in members["columns"]],
        "rows": [{"member": r["member"], "cells": [_number(v) for v in r["values"]]} for r in rows],
    }


def _member_plots(run_dir: Path, family: str, members: dict[str, Any]) -> list[dict[str, Any]]:
    """Each finished member's own plots (families/<family>.<member>/plots/), one group per member."""
    groups = []
    for row in members["rows"]:
        images = _plots(run_dir / MEMBERS_DIR / f"{family}.{row['member']}" / PLOTS_DIR)
        flat = [image for family_images in images.values() for image in family_images]
        if flat:
            groups.append({"member": row["member"], "plots": flat})
    return groups


def _changed_features(run_dir: Path, family: str, members: dict[str, Any]) -> list[dict[str, Any]]:
    """For tabular counterfactuals, the first rows of each explainer's changed-features table (original
    units), or of the run's own table when it is a plain explainer run."""
    if family != "cf":
        return []
    folders = [(r["member"], run_dir / MEMBERS_DIR / f"cf.{r['member']}") for r in members["rows"]]
    tables = []
    for member, folder in folders or [("", run_dir)]:
        try:
            frame = pd.read_csv(folder / CHANGED_FEATURES)
        except (OSError, ValueError):
            continue
        tables.append(
            {
                "member": member,
                "columns": list(frame.columns),
                "rows": frame.head(CHANGED_ROWS_SHOWN).astype(str).values.tolist(),
                "total": len(frame),
            }
        )
    return tables


def _record_or_empty(run_dir: Path) -> dict[str, Any]:
    """The run's result.json, or {} when it is missing or unreadable (collect_runs already says which)."""
    try:
        record = read_result(run_dir)
    except (ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _plots(plots_dir: Path) -> dict[str, list[dict[str, str]]]:
    """Every PNG under plots/, grouped by family, as {name, src} with `src` a base64 data URI."""
    grouped: dict[str, list[dict[str, str]]] = {}
    for path in sorted(plots_dir.rglob("*.png")) if plots_dir.is_dir() else []:
        relative = path.relative_to(plots_dir)
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        grouped.setdefault(family_of_plot(relative), []).append(
            {"name": relative.as_posix(), "src": f"data:image/png;base64,{encoded}"}
        )
    return grouped


def _config_text(run_dir: Path) -> str:
    path = run_dir / CONFIG_FILE
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return f"({path} cannot be read: {err})"


def _number(value: Any) -> str:
    """A metric for reading: counts as integers, other values to DIGITS decimals, missing or NaN as '–'."""
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if float(value).is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.{DIGITS}f}"


def _label(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _first_line(error: Any) -> str | None:
    if not isinstance(error, str) or not error.strip():
        return None
    return error.strip().splitlines()[0]
