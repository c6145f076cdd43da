"""Checks `trustbench run` makes on every job's composed config before Hydra starts any job.

Composing a config takes a fraction of a second; loading data takes seconds. So the CLI composes each job
of the run or sweep itself (with Hydra's compose API and its basic sweeper's expansion of `a,b` lists),
runs :func:`trustbench.config.check_choices` on it, and stops with one line on the first job that cannot
work. Hydra's own composition errors are rewritten the same way, with a did-you-mean for misspelled keys.
The checks run again inside each job (the same function), so a job started another way is checked too.
"""

from __future__ import annotations

import re
import shutil

from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from trustbench.errors import TrustbenchError
from trustbench.schema import validate
from trustbench.suggest import did_you_mean

MULTIRUN_FLAGS = ("-m", "--multirun")
_OVERRIDE_FAILED = re.compile(r"Could not override '([^']+)'")


def preflight(args: list[str], config_dir: str) -> None:
    """Exit with one line when any job that `args` (overrides and flags of `trustbench run`) would start
    has an invalid value or an impossible combination. Runs given other Hydra flags (--help, --cfg, -cn,
    ...) are left to Hydra."""
    overrides = [arg for arg in args if arg not in MULTIRUN_FLAGS]
    if any(arg.startswith("-") for arg in overrides):
        return
    multirun = len(overrides) < len(args)
    with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
        for job in _jobs(overrides, multirun):
            cfg = _compose(job)
            if multirun:  # a single run never goes through the launcher
                _check_launcher(cfg)
            _check(cfg)


def _jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of each job: one for a single run, the expanded lists of a basic-sweeper sweep.
    Sweeps other sweepers expand (interval(), Optuna's params) are checked with those overrides left out."""
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    listable = [o for o in parsed if not o.is_sweep_override() or o.is_discrete_sweep()]
    return [job for batch in BasicSweeper.split_arguments(listable, None) for job in batch]


def _compose(overrides: list[str]) -> DictConfig:
    try:
        return compose("config", overrides=overrides, return_hydra_config=True)
    except HydraException as err:
        raise SystemExit(f"trustbench: {_explain(err, overrides)}") from None


def _explain(err: HydraException, overrides: list[str]) -> str:
    """Hydra's error as one line; an override of a key that does not exist gets the closest real key."""
    message = " ".join(str(err).split())
    found = _OVERRIDE_FAILED.search(message)
    if not found:
        return message
    key = found.group(1)
    parent = key.rpartition(".")[0]
    others = [o for o in overrides if o.lstrip("+~").partition("=")[0] != key]
    try:
        root = compose("config", overrides=others)
    except HydraException:  # another override is broken too: name this key without a guess
        return f"no config key {key}; to add a new key write +{key}=..."
    node = OmegaConf.select(root, parent) if parent else root
    known = [f"{parent}.{k}" if parent else str(k) for k in node] if isinstance(node, DictConfig) else []
    return f"no config key {key}{did_you_mean(key, known)}; to add a new key write +{key}=..."


def _check_launcher(cfg: DictConfig) -> None:
    """SLURM's launcher submits with sbatch: without it, say so instead of submitit's long traceback."""
    target = OmegaConf.select(cfg, "hydra.launcher._target_", default="") or ""
    if target.endswith("SlurmLauncher") and shutil.which("sbatch") is None:
        raise SystemExit(
            "trustbench: launcher=slurm needs SLURM (no sbatch on this machine); to run the same jobs as "
            "local processes add hydra/launcher=submitit_local (and trainer=cpu without GPUs)"
        )


def _check(cfg: DictConfig) -> None:
    """Values first (no heavy import), then the combination checks (which import the backbone's class)."""
    try:
        validate(cfg)
        from trustbench.config import check_choices

        check_choices(cfg)
    except TrustbenchError as err:
        raise SystemExit(f"trustbench: {err}") from None
