"""Benchmark tables: runs grouped by config keys, metrics as mean ± std over the runs of each group.

Failed and unfinished runs are counted in every group (`failed` column), never silently dropped, and an
experiment's published numbers (its `paper:` block) appear as a row of their own beside ours. A record that
cannot be read (a damaged `result.json` or `run_config.yaml`) counts as failed and is named in a footnote,
so one bad file never hides the table of the good ones.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from trustbench.results.record import CONFIG_FILE, RESULT_FILE, find_run_dirs, read_result
from trustbench.suggest import did_you_mean

FORMATS = ("md", "csv", "latex")


def config_value(config: dict[str, Any], key: str) -> Any:
    """`key` (dotted) looked up in a run's config; a group such as `method` stands for its `name`."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, dict):
        return value.get("name")
    return value


def collect_runs(paths: Iterable[Path], by: Sequence[str]) -> pd.DataFrame:
    """One row per run directory: the `by` keys, `status` (ok | failed | incomplete), `error`, `damaged`
    (the unreadable file of a damaged record, else None) and metrics."""
    rows = []
    for run_dir in find_run_dirs(paths):
        record, damaged = _read_record(run_dir)
        row = {key: config_value(record["config"], key) for key in by}
        row.update(run_dir=str(run_dir), status=record["status"], error=record.get("error"), damaged=damaged)
        row.update(record.get("metrics") or {})
        row["_paper"] = record["config"].get("paper")
        row["_config"] = record["config"]
        rows.append(row)
    runs = pd.DataFrame(rows)
    if not runs.empty:
        _check_by_keys(runs, by)
    return runs.drop(columns="_config", errors="ignore")


def _read_record(run_dir: Path) -> tuple[dict[str, Any], str | None]:
    """The run's record (an unfinished run's built from its config), and the damaged file if one is."""
    try:
        record = read_result(run_dir)
        if record is not None and not (isinstance(record, dict) and isinstance(record.get("config"), dict)):
            raise ValueError("not a trustbench result record")
    except (ValueError, UnicodeDecodeError) as err:
        return _damaged_record(run_dir, run_dir / RESULT_FILE, err), str(run_dir / RESULT_FILE)
    if record is not None:
        return record, None
    try:
        config = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE), resolve=False)
        if not isinstance(config, dict):
            raise ValueError("not a mapping of config keys")
    except Exception as err:  # noqa: BLE001 - any unreadable YAML (yaml, omegaconf, decoding errors)
        return _damaged_record(run_dir, run_dir / CONFIG_FILE, err), str(run_dir / CONFIG_FILE)
    return {"status": "incomplete", "metrics": {}, "config": config, "error": None}, None


def _damaged_record(run_dir: Path, path: Path, err: Exception) -> dict[str, Any]:
    """A failed record for an unreadable file; its group keys come from run_config.yaml when that reads."""
    config: Any = {}
    if path.name == RESULT_FILE:
        try:
            config = OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_FILE), resolve=False)
        except Exception:  # noqa: BLE001 - both files damaged: the run is counted without its keys
            config = {}
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    error = f"damaged {path.name}: {reason}"
    config = config if isinstance(config, dict) else {}
    return {"status": "failed", "metrics": {}, "config": config, "error": error}


def _check_by_keys(runs: pd.DataFrame, by: Sequence[str]) -> None:
    """Refuse a `--by` key that no run's config has (it would merge every run into one row of NaN)."""
    known = sorted({key for config in runs["_config"] for key in _dotted_keys(config)})
    if not known:  # every config is damaged: nothing to check the keys against
        return
    for key in by:
        if key not in known:
            top = sorted({k for k in known if "." not in k})
            raise ValueError(
                f"no run has config key {key!r}{did_you_mean(key, known)}; top-level keys: {', '.join(top)} "
                "(nested keys are dotted, e.g. method.optimizer.lr)"
            )


def _dotted_keys(config: dict[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in config.items():
        yield f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _dotted_keys(value, f"{prefix}{key}.")


def damaged_footnote(runs: pd.DataFrame) -> str:
    """One line per damaged record, naming its file and what is wrong ('' when every record read)."""
    if "damaged" not in runs:
        return ""
    damaged = runs[runs["damaged"].notna()]
    lines = [f"  {path}: {error}" for path, error in zip(damaged["damaged"], damaged["error"], strict=True)]
    return "\n".join([f"{len(lines)} damaged record(s), counted as failed:", *lines]) if lines else ""


def select_metrics(columns: Iterable[str], patterns: Sequence[str] | None) -> list[str]:
    """Metric columns matching any of `patterns` (exact keys or shell globs such as `ood/*/auroc`)."""
    metric_columns = sorted(c for c in columns if "/" in c and c != "run_dir")
    if not patterns:
        return metric_columns
    chosen = [c for c in metric_columns if any(fnmatch.fnmatchcase(c, p) for p in patterns)]
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(c, p) for c in metric_columns)]
    if unknown:
        raise ValueError(
            f"no run has metric {', '.join(unknown)}; known metrics: {', '.join(metric_columns)}"
        )
    return chosen


def summarize(runs: pd.DataFrame, by: Sequence[str], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per group: run counts and each metric as mean and std (sample std, ddof=1) over ok runs."""
    if runs.empty:
        raise ValueError("no runs found under the given paths (a run directory holds run_config.yaml)")
    chosen = select_metrics(runs.columns, metrics)
    rows = []
    for keys, group in runs.groupby(list(by), dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        ok = group[group.status == "ok"]
        row: dict[str, Any] = dict(zip(by, keys, strict=True))
        row.update(source="ours", runs=len(ok), failed=len(group) - len(ok))
        for metric in chosen:
            values = ok[metric].dropna() if metric in ok else pd.Series(dtype=float)
            row[metric] = values.mean() if len(values) else float("nan")
            row[f"{metric} std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
        rows.append(row)
        paper = next((p for p in group["_paper"] if isinstance(p, dict)), None)
        if paper:
            paper_row = dict(
                zip(by, keys, strict=True), source=paper.get("citation", "paper"), runs=0, failed=0
            )
            paper_row.update({m: paper.get("metrics", {}).get(m, float("nan")) for m in chosen})
            rows.append(paper_row)
    return pd.DataFrame(rows)


def render(summary: pd.DataFrame, by: Sequence[str], fmt: str, digits: int = 4) -> str:
    """The summary as Markdown, CSV (separate mean and std columns) or LaTeX (mean ± std cells)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown table format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "csv":
        return summary.to_csv(index=False, float_format=f"%.{digits}g")
    metrics = [c for c in summary.columns if "/" in c and not c.endswith(" std")]
    shown = summary[[*by, "source", "runs", "failed"]].copy()
    for metric in metrics:
        stds = (
            summary[f"{metric} std"] if f"{metric} std" in summary else pd.Series(float("nan"), summary.index)
        )
        shown[metric] = [_cell(m, s, digits, fmt) for m, s in zip(summary[metric], stds, strict=True)]
    if fmt == "md":
        return shown.to_markdown(index=False)
    shown = shown.rename(columns=_latex_escape).map(lambda v: _latex_escape(v) if isinstance(v, str) else v)
    return shown.to_latex(index=False, escape=False)


def _latex_escape(text: str) -> str:
    """Escape the characters run keys and metric names use that LaTeX treats specially (not our ±)."""
    return text.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def _cell(mean: float, std: float, digits: int, fmt: str) -> str:
    if pd.isna(mean):
        return "–"
    plus_minus = r" $\pm$ " if fmt == "latex" else " ± "
    return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f}{plus_minus}{std:.{digits}f}"
