"""The supervisor table: rows supervisors, columns the non-nominal test sets, cells AUROC vs nominal.

Each run of a sweep with the supervisors suite records ``sup/<supervisor>/<set>/auroc``
(:mod:`trustbench.evaluation.supervisors`); this pivots every ok run's keys into one row per (model,
supervisor), where model is the run's method (the classifier the supervisor watches), with mean ± std over
the runs (seeds) that have it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from trustbench.evaluation.supervisor_sets import NON_NOMINAL
from trustbench.results.table import collect_runs

KEY = re.compile(r"^sup/(?P<supervisor>[^/]+)/(?P<set>[^/]+)/auroc$")


def supervisor_table(runs: pd.DataFrame, digits: int = 3) -> str:
    """The Markdown table of the ok runs in `runs` (as :func:`collect_runs` gives them with by=[method])."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    for _, run in runs[runs.status == "ok"].iterrows():
        for column, value in run.items():
            match = KEY.match(str(column))
            if match and pd.notna(value):
                row = cells.setdefault((run["method"], match["supervisor"]), {})
                row.setdefault(match["set"], []).append(float(value))
    if not cells:
        raise ValueError("no run under the given paths has supervisor AUROCs (sup/<supervisor>/<set>/auroc)")
    rows = []
    for (model, supervisor), by_set in sorted(cells.items()):
        row = {"model": model, "supervisor": supervisor}
        for name in NON_NOMINAL:
            values = pd.Series(by_set.get(name, []), dtype=float)
            row[name] = _cell(values, digits)
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False)


def _cell(values: pd.Series, digits: int) -> str:
    if values.empty:
        return "–"
    if len(values) == 1:
        return f"{values.iloc[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


class PrintSupervisorTable(Callback):
    """At the end of a multirun, print its supervisor table."""

    def __init__(self, digits: int = 3) -> None:
        self.digits = digits

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        runs = collect_runs([Path(config.hydra.sweep.dir)], ["method"])
        print(supervisor_table(runs, self.digits))
