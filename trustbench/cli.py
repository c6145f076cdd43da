"""`trustbench`: run experiments, tabulate results, list what can be composed, manage datasets.

Heavy libraries (torch, Lightning, Hydra, pandas) are imported inside the subcommands that need them, so
`trustbench --help` and `trustbench list` answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
GROUPS = ("data", "backbone", "method", "trainer", "logger", "experiment", "launcher", "sweep", "audit")
LISTED_GROUPS = (
    "data", "backbone", "method", "experiment", "trainer", "logger", "launcher", "sweep", "audit"
)


def config_choices(group: str) -> list[str]:
    """Names of the configs in a Hydra group (the YAML files of configs/<group>/)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def describe(group: str, name: str) -> str:
    """A config's one-line description: its first comment line that is not a Hydra directive."""
    for line in (CONFIG_DIR / group / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
    return ""


def check_overrides(overrides: list[str]) -> None:
    """Exit with one line when an override picks a config that does not exist, listing the valid ones."""
    from trustbench.suggest import did_you_mean

    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        key = key.removeprefix("override ").strip()
        if not sep or key not in GROUPS or value in ("", "null"):
            continue
        choices = config_choices(key)
        for choice in value.split(","):
            if choice not in choices:
                raise SystemExit(
                    f"trustbench: unknown {key} {choice!r}{did_you_mean(choice, choices)}; "
                    f"choose one of: {', '.join(choices)}"
                )


def cmd_run(overrides: list[str]) -> None:
    """Hand the overrides to Hydra (as the argv of trustbench/app.py, which DDP workers re-run)."""
    check_overrides(overrides)
    from trustbench import app
    from trustbench.preflight import preflight

    preflight(overrides, app.CONFIG_DIR)

    sys.argv = [app.__file__, *overrides]
    app.main()


def cmd_audit(overrides: list[str]) -> None:
    """`trustbench run` with the audit config group composed: one model, every family, one report.html."""
    chosen = any(o.lstrip("+").partition("=")[0] == "audit" for o in overrides)
    cmd_run(overrides if chosen else ["audit=default", *overrides])


def cmd_list(args: argparse.Namespace) -> None:
    for group in [args.group] if args.group else LISTED_GROUPS:
        print(f"{group}:")
        names = config_choices(group)
        width = max((len(n) for n in names), default=0)
        for name in names:
            print(f"  {name:<{width}}  {describe(group, name)}")


def cmd_table(args: argparse.Namespace) -> None:
    from trustbench.results.table import collect_runs, damaged_footnote, render, summarize

    by = [key for key in args.by.split(",") if key]
    metrics = [m for m in args.metrics.split(",") if m] if args.metrics else None
    tradeoff = [m for m in args.tradeoff.split(",") if m] if args.tradeoff else []
    try:
        runs = collect_runs([Path(p) for p in args.paths], by)
        summary = summarize(runs, by, metrics)
        print(render(summary, by, args.format, args.digits))
        footnote = damaged_footnote(runs)
        if footnote:
            print(footnote, file=sys.stderr)
        if tradeoff:
            from trustbench.plots.fairness import tradeoff_plot

            plotted = summarize(runs, by, [args.accuracy, *tradeoff])
            print(f"trade-off plot: {tradeoff_plot(plotted, by, tradeoff, args.plot, args.accuracy)}")
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"trustbench table: {err}") from None


def cmd_report(args: argparse.Namespace) -> None:
    from trustbench.report.render import write_report

    by = [key for key in args.by.split(",") if key]
    try:
        out = write_report([Path(p) for p in args.paths], Path(args.out) if args.out else None, by)
        print(f"report: {out}")
    except (ValueError, OSError) as err:
        raise SystemExit(f"trustbench report: {err}") from None


def cmd_data(args: argparse.Namespace) -> None:
    from trustbench.data import sources

    data_dir = Path(args.data_dir)
    if args.action == "status":
        sources.print_status(data_dir)
        return
    if not args.name:
        raise SystemExit("trustbench data fetch: name a dataset, e.g. trustbench data fetch cifar10")
    try:
        for name in args.name:
            print(f"{name}: {sources.fetch(name, data_dir)}")
    except (ValueError, OSError) as err:
        raise SystemExit(f"trustbench data fetch: {err}") from None


def default_data_dir() -> str:
    """Mirrors configs/paths/default.yaml: $TRUSTBENCH_DATA, else ~/.cache/trustbench."""
    return os.environ.get("TRUSTBENCH_DATA", str(Path.home() / ".cache" / "trustbench"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trustbench",
        description="Train and evaluate trustworthy-ML methods (uncertainty, OOD detection, "
        "counterfactuals, debiasing) from Hydra configs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        help="train and evaluate one run, or a sweep with -m",
        description="Hydra overrides, e.g. `method=erm data=mnist seed=0`; -m a,b sweeps (multirun).",
        add_help=False,
    )
    run.add_argument("overrides", nargs="*", help="Hydra overrides and flags (-m, --cfg job, --help, ...)")

    audit = commands.add_parser(
        "audit",
        help="one model, every family that applies (uncertainty, fairness, OOD detectors, counterfactual "
        "explainers), one report.html",
        description="Hydra overrides as for `run` (data=, backbone=, method=, audit.detectors=[...], ...).",
        add_help=False,
    )
    audit.add_argument("overrides", nargs="*", help="Hydra overrides and flags, as for run")

    table = commands.add_parser("table", help="mean ± std over seeds of finished runs, one row per group")
    table.add_argument("paths", nargs="+", help="run or sweep directories to read (searched recursively)")
    table.add_argument("--by", default="method,data", help="config keys to group by (default: method,data)")
    table.add_argument("--metrics", help="comma-separated metric keys or globs, e.g. 'cls/acc,ood/*/auroc'")
    table.add_argument("--format", choices=("md", "csv", "latex"), default="md")
    table.add_argument("--digits", type=int, default=4)
    table.add_argument(
        "--tradeoff",
        help="also plot --accuracy against each of these metrics, one point per group and one line per "
        "value of the first --by key, e.g. --by method,method.lam --tradeoff fair/sex/di,fair/sex/w2",
    )
    table.add_argument("--accuracy", default="cls/acc", help="y axis of --tradeoff (default: %(default)s)")
    table.add_argument(
        "--plot", default="tradeoff.png", help="where --tradeoff writes (default: %(default)s)"
    )
    table.set_defaults(func=cmd_table)

    report = commands.add_parser(
        "report", help="one self-contained report.html of run or sweep directories (plots embedded)"
    )
    report.add_argument("paths", nargs="+", help="run or sweep directories to read (searched recursively)")
    report.add_argument("--out", help="where to write the page (default: report.html in the first path)")
    report.add_argument(
        "--by", default="method,data", help="sweeps: config keys to group by (default: %(default)s)"
    )
    report.set_defaults(func=cmd_report)

    listing = commands.add_parser(
        "list", help="what can be composed: data, backbone, method, experiment, ..."
    )
    listing.add_argument("group", nargs="?", choices=LISTED_GROUPS)
    listing.set_defaults(func=cmd_list)

    data = commands.add_parser("data", help="dataset sources: status of each, or fetch one")
    data.add_argument("action", choices=("status", "fetch"))
    data.add_argument("name", nargs="*", help="dataset(s) to fetch")
    data.add_argument(
        "--data-dir", default=default_data_dir(), help="where datasets live (default: %(default)s)"
    )
    data.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # everything after `run` belongs to Hydra, flags included
        cmd_run(argv[1:])
        return
    if argv[:1] == ["audit"]:
        cmd_audit(argv[1:])
        return
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
