"""Running one audit member on the shared evaluation context, and keeping its outcome on disk.

Each member's outcome (status, metrics, error, seconds, and the weights fingerprint it was computed on)
is written atomically to `families/<member>/outcome.json` as soon as the member ends. An audit started
again in the same run directory reuses every finished outcome whose weights are the model's, so a killed
audit redoes only the members it had not finished; a member that raised is recorded as failed with its
one-line reason and the audit goes on.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trustbench.audit.plan import Member
from trustbench.evaluation import evaluate
from trustbench.evaluation.context import EvaluationContext
from trustbench.results.record import write_atomically

log = logging.getLogger("trustbench")
FAMILIES_DIR = "families"
OUTCOME_FILE = "outcome.json"
OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass
class Outcome:
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0
    weights: str | None = None

    def summary(self) -> dict[str, Any]:
        """What result.json's `families` keeps of it (the metrics are in `metrics` already)."""
        return {"status": self.status, "error": self.error, "seconds": round(self.seconds, 3)}


def member_dir(run_dir: Path, member: Member) -> Path:
    return run_dir / FAMILIES_DIR / member.slug


def run_member(member: Member, context: EvaluationContext, weights: str) -> Outcome:
    """The member's outcome: reused from disk when finished on these weights, else computed and saved."""
    folder = member_dir(context.run_dir, member)
    if member.skipped is not None:
        return Outcome(SKIPPED, error=member.skipped, weights=weights)
    finished = _read_outcome(folder / OUTCOME_FILE)
    if finished is not None and finished.status == OK and finished.weights == weights:
        log.info("audit: %s already finished in this run dir; reused", member.name)
        return finished
    # The method's own suite and fairness write their plots where a plain run does; detectors and
    # explainers each get a folder of their own, as they all draw plots of the same names.
    artefacts = context.run_dir if member.member_of is None else folder
    started = time.perf_counter()
    try:
        metrics = evaluate(member.suite, context.for_member(member.cfg, artefacts))
        outcome = Outcome(OK, namespaced(metrics, member), weights=weights)
    except Exception as err:  # noqa: BLE001 - one broken member must not lose the others' results
        log.error("audit: %s failed: %s", member.name, err)
        log.debug("%s", traceback.format_exc())
        outcome = Outcome(FAILED, error=f"{type(err).__name__}: {err}", weights=weights)
    outcome.seconds = time.perf_counter() - started
    write_atomically(folder / OUTCOME_FILE, json.dumps(asdict(outcome), indent=2, default=float) + "\n")
    return outcome


def namespaced(metrics: dict[str, float], member: Member) -> dict[str, float]:
    """A detector's or explainer's keys with its name after the family: `ood/mnist/auroc` of knn becomes
    `ood/knn/mnist/auroc`, `hp/k` becomes `hp/knn/k`. Their `cls/*` keys describe the same classifier as
    the method's own suite and are left to it."""
    if member.member_of is None:
        return dict(metrics)
    renamed = {}
    for key, value in metrics.items():
        family, _, rest = key.partition("/")
        if family != "cls":
            renamed[f"{family}/{member.member_of}/{rest}"] = value
    return renamed


def _read_outcome(path: Path) -> Outcome | None:
    """A saved outcome, or None when there is none or it cannot be read (the member then runs again)."""
    try:
        return Outcome(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
