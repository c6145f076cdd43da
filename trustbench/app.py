"""The Hydra entry point behind `trustbench run`.

Kept apart from the CLI so that it can also be executed as a script: Lightning's DDP launcher re-runs
``python <this file> <overrides>`` for ranks > 0.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from trustbench.results.rundir import run_stamp

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
# Cached: every job of a sweep resolves the sweep dir to the same stamp (Hydra copies the cache to each job).
OmegaConf.register_new_resolver("run_stamp", run_stamp, use_cache=True, replace=True)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one job; returns the metric named by `optimized_metric` (for sweepers such as Optuna)."""
    from trustbench.runner import run_job

    return run_job(cfg)


if __name__ == "__main__":
    main()
