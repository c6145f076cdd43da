"""What the stress suite costs next to one prediction pass over the Adult test split (16,281 rows).

On an ERM MLP trained here for `--epochs` (default 1) on real Adult, in one process, one thread, times:
  * one prediction pass over the test split (the pass every suite shares; median of 5);
  * the entropic projection of every Adult feature (5 continuous features and every category's share,
    ~100), 21 levels, every stress metric (accuracy, ECE, positive rate, ... 11 of them), without and with
    20 bootstrap resamples: the curves alone, then the whole suite call (CSV and plot included); the
    model must be called 0 times, as the tilt only reweights the one pass;
  * the quantile transports (exact and polynomial) of age, hours_per_week and education_num, 21 levels,
    which predict the moved rows again: their time and rows predicted, in prediction passes.

    python scripts/bench_stress.py [--epochs 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from trustbench.app import CONFIG_DIR
from trustbench.evaluation.context import EvaluationContext, predict_all
from trustbench.evaluation.stress import evaluate_stress
from trustbench.experiment import fit
from trustbench.stress.curves import tilt_curves, transport_curves, unstressed
from trustbench.stress.features import tabular_features
from trustbench.stress.grid import stress_levels
from trustbench.stress.settings import StressSettings

TRANSPORTED = ("age", "hours_per_week", "education_num")


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        overrides = ["data=adult", f"trainer.max_epochs={args.epochs}", f"paths.output_dir={root}"]
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        with open_dict(cfg):
            cfg.logger = {}
        fitted = fit(cfg, root / "run")
        context = EvaluationContext(cfg, fitted.module, fitted.datamodule, fitted.dataset, root / "run")
        x = fitted.datamodule.x_test
        batch = fitted.datamodule.eval_batch_size
        predict_all(fitted.module, x, batch)  # warm-up
        one_pass = statistics.median(timed(predict_all, fitted.module, x, batch)[1] for _ in range(5))
        test = context.prediction("test", x)
        print(f"one prediction pass over {len(x)} test rows: {one_pass * 1000:.1f} ms")

        calls = count_calls(fitted.module)
        for bootstrap in (0, 20):
            seconds, features, metrics = time_tilt_curves(fitted, test, bootstrap)
            print(
                f"tilt curves, {features} features x 21 levels x {metrics} metrics, {bootstrap} resamples: "
                f"{seconds:.2f} s = {seconds / one_pass:.0f}x one pass"
            )
        with open_dict(cfg):
            cfg.data.stress = {"features": ["all"], "transforms": ["tilt"]}
        _, seconds = timed(evaluate_stress, context)
        print(f"whole tilt suite call (all features, 20 resamples, CSV, plot): {seconds:.2f} s = "
              f"{seconds / one_pass:.0f}x one pass")  # fmt: skip
        print(f"model calls during the tilt: {calls[0]} (the one shared pass serves every level)")

        for name, transform, seconds, rows in time_transports(fitted, test):
            print(
                f"{transform} transport of {name}, 21 levels: {seconds:.2f} s = {seconds / one_pass:.0f}x "
                f"one pass; rows predicted again: {rows / len(x):.1f} passes"
            )


def time_tilt_curves(fitted, test, bootstrap: int) -> tuple[float, int, int]:
    """Seconds to tilt every non-constant Adult feature at 21 levels; the feature and metric counts."""
    settings = StressSettings(features=("all",), transforms=("tilt",), bootstrap=bootstrap)
    data = unstressed(fitted.dataset.x_test, fitted.datamodule.y_test, fitted.datamodule.groups_test, test,
                      fitted.module.predict, settings)  # fmt: skip
    features = [f for f in tabular_features(fitted.dataset.tabular, data.x, ("all",)) if f.values.std() > 0]
    taus = stress_levels(settings.levels)
    start = time.perf_counter()
    for feature in features:
        tilt_curves(feature.values, taus, settings, data)
    return time.perf_counter() - start, len(features), len(data.rows.metric_names())


def time_transports(fitted, test):
    """(feature, transform, seconds, rows predicted again) for each transport of TRANSPORTED."""
    settings = StressSettings(bootstrap=0)
    batch, predicted = fitted.datamodule.eval_batch_size, [0]

    def predict(rows: torch.Tensor):
        predicted[0] += len(rows)
        return predict_all(fitted.module, rows, batch)

    data = unstressed(fitted.dataset.x_test, fitted.datamodule.y_test, fitted.datamodule.groups_test, test,
                      predict, settings)  # fmt: skip
    for feature in tabular_features(fitted.dataset.tabular, data.x, TRANSPORTED):
        for transform in ("quantile", "quantile_smooth"):
            predicted[0] = 0
            _, seconds = timed(transport_curves, feature, stress_levels(21), transform, settings, data)
            yield feature.name, transform, seconds, predicted[0]


def count_calls(module) -> list[int]:
    calls, predict = [0], module.predict

    def counted(x):
        calls[0] += 1
        return predict(x)

    module.predict = counted
    return calls


if __name__ == "__main__":
    main()
