"""What does one `trustbench audit` save over running the same families as separate `trustbench run`s?

For each data set (Fashion-MNIST with LeNet, Adult with the MLP by default) this runs, in one process and
each in a fresh output dir:

- the audit with the default members (configs/audit/default.yaml), and
- the same work as separate commands on the same model: `run method=erm` (trains, stores the classifier,
  evaluates the uncertainty suite) and one `run method=<member>` per detector and explainer the audit ran,
  each reusing the stored classifier.

It prints two ratios (issue 12's targets): the audit's wall time over the separate runs' sum (≤ 0.6), and
over the floor that no schedule of these runs can beat, training + the most expensive single family, i.e.
the `method=erm` run plus the slowest member's separate run (≤ 1.5).

    python scripts/bench_audit.py [--data fashion_mnist adult] [--points 30] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKBONES = {"fashion_mnist": "lenet", "adult": "mlp"}


def timed(args: list[str], out: Path) -> float:
    """Wall seconds of one CLI command in a fresh process; a failure stops the benchmark with its stderr."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "trustbench.cli", *args, f"paths.output_dir={out}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench_audit: {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return seconds


def bench(data: str, points: int, epochs: int, root: Path) -> dict[str, float]:
    common = [f"data={data}", f"backbone={BACKBONES.get(data, 'lenet')}", f"trainer.max_epochs={epochs}"]
    audit_dir = root / f"{data}_audit"
    audit_seconds = timed(
        ["audit", *common, f"audit.points={points}", f"hydra.run.dir={audit_dir / 'run'}"], audit_dir
    )
    record = json.loads((audit_dir / "run" / "result.json").read_text())
    members = [name for name, o in record["families"].items() if "/" in name and o["status"] == "ok"]

    separate_dir = root / f"{data}_separate"
    separate = {"erm": timed(["run", *common, f"hydra.run.dir={separate_dir / 'erm'}"], separate_dir)}
    for member in members:
        family, method = member.split("/", 1)
        extra = [f"method.explain.points={points}"] if family == "cf" else []
        run_dir = separate_dir / method
        separate[member] = timed(
            ["run", *common, f"method={method}", *extra, f"hydra.run.dir={run_dir}"], separate_dir
        )
    slowest = max((m for m in separate if m != "erm"), key=separate.get, default="erm")
    floor = separate["erm"] + (separate[slowest] if slowest != "erm" else 0.0)
    return {
        "audit_s": audit_seconds,
        "separate_sum_s": sum(separate.values()),
        "erm_run_s": separate["erm"],
        "slowest_member": slowest,
        "slowest_member_s": separate[slowest],
        "audit_over_separate": audit_seconds / sum(separate.values()),
        "audit_over_floor": audit_seconds / floor,
        "members": len(members),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["fashion_mnist", "adult"])
    parser.add_argument("--points", type=int, default=30, help="test points per explainer (audit default)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (the cpu trainer's default)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_audit_") as tmp:
        for data in args.data:
            figures = bench(data, args.points, args.epochs, Path(tmp))
            print(
                f"{data}: audit {figures['audit_s']:.1f} s over {figures['members']} members; separate runs "
                f"{figures['separate_sum_s']:.1f} s (erm {figures['erm_run_s']:.1f} s, slowest member "
                f"{figures['slowest_member']} {figures['slowest_member_s']:.1f} s)\n"
                f"  audit / separate runs = {figures['audit_over_separate']:.2f}  (target <= 0.60)\n"
                f"  audit / (training + slowest family) = {figures['audit_over_floor']:.2f}  (target <= 1.50)"
            )


if __name__ == "__main__":
    main()
