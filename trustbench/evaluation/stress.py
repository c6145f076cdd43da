"""Stress testing: the model's metrics as one input feature's distribution is pushed away from the test set's.

Two transforms of the test rows (see :mod:`trustbench.stress`), no retraining and no new data:

- ``tilt``: entropic variable projection (Bachoc et al., Information and Inference 2023): the rows are
  reweighted so the feature's mean reaches each target; one prediction pass serves every level;
- ``quantile``, ``quantile_smooth``: quantile-constrained W2 projection (Il Idrissi et al. 2022): the
  feature's ``quantile_level`` quantile (the median by default) is moved to each target and every row moves
  through its rank, other features unchanged; only the rows that moved are predicted again.

Levels τ run from −1 (the feature's α quantile) through 0 (unstressed) to 1 (its 1 − α quantile), see
:mod:`trustbench.stress.grid`. Tabular features are named in ``data.stress.features`` (a continuous
feature, or ``feature=category`` for a category's share); an immutable feature is only reweighted, never
transported (changing a person's sex is not a population shift), and a category's share has no smooth
variant. Images are stressed pixel by pixel (or by ``patch``) with the tilt only.

Outputs, with the metrics of :mod:`trustbench.metrics.stress` (acc, ece, uncertainty, mean_prob,
pos_rate, di_<a>, spd_<a>, eod_<a>):

- keys ``stress/<feature>/<metric>/<transform>/<τ>`` at ``data.stress.key_levels`` (τ written ``-1``,
  ``+1``, ``+0.5``), e.g. ``stress/age/acc/tilt/+1``; images ``stress/pixels/<metric>/tilt/<τ>/min|max``,
  the smallest and largest value over the stressed pixels;
- ``stress_curves.csv`` in the run dir (images: ``stress_pixels.csv``, with the pixel's ``row`` and
  ``col``): every level and metric with its bootstrap band (columns of
  :data:`~trustbench.stress.curves.CURVE_COLUMNS`), diagnostics included;
- plots ``plots/stress_tilt.png`` and ``plots/stress_quantile.png`` (one column of panels per feature),
  images ``plots/stress_pixels.png`` and ``plots/stress_pixel_classes.png`` (maps).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
import torch

from trustbench.errors import ConfigError
from trustbench.evaluation.context import EvaluationContext, predict_all
from trustbench.metrics.stress import weighted_metrics
from trustbench.plots.stress import pixel_class_maps, pixel_maps, stress_curve_panels
from trustbench.results.record import write_atomically
from trustbench.stress.curves import Unstressed, curve_table, tilt_curves, transport_curves, unstressed
from trustbench.stress.features import patch_means, tabular_features
from trustbench.stress.grid import stress_levels
from trustbench.stress.settings import StressSettings

log = logging.getLogger("trustbench")
CURVES_FILE = "stress_curves.csv"
PIXELS_FILE = "stress_pixels.csv"
# Transports move table rows only (images are tilted, never moved), so rows predicted again go in large
# batches: a small training batch (8 rows) would cost a forward call per 8 of the ~10^6 moved rows.
MOVED_ROWS_BATCH = 4096


def evaluate_stress(context: EvaluationContext) -> dict[str, float]:
    """The keys, CSV and plots of the module docstring."""
    datamodule, dataset = context.datamodule, context.dataset
    block = context.cfg.data.get("stress")
    settings = StressSettings.from_config(block, context.cfg.seed, images=dataset.kind == "image")
    test = context.prediction("test", datamodule.x_test)

    def predict(rows: torch.Tensor):
        batch = max(datamodule.eval_batch_size, MOVED_ROWS_BATCH)
        return predict_all(context.module, datamodule.normalize_inputs(rows), batch)

    data = unstressed(dataset.x_test, datamodule.y_test, datamodule.groups_test, test, predict, settings)
    title = f"{context.cfg.data.name} · {context.cfg.method.name}"
    if dataset.kind == "image":
        return _stress_pixels(context, settings, data, title)
    if dataset.tabular is None:
        raise ConfigError(f"the stress suite needs tabular metadata or images; {dataset.name} has neither")
    return _stress_features(context, settings, data, title)


def _stress_features(
    context: EvaluationContext, settings: StressSettings, data: Unstressed, title: str
) -> dict[str, float]:
    features = tabular_features(context.dataset.tabular, data.x, settings.features)
    constant = [f.name for f in features if f.values.min() == f.values.max()]
    if constant:  # e.g. a category seen only in the training split
        log.warning("stress: %s cannot be stressed: the same value in every test row", ", ".join(constant))
        features = [f for f in features if f.name not in constant]
    taus = stress_levels(settings.levels)
    tables = []
    for feature in features:
        for transform in settings.transforms:
            if transform != "tilt" and feature.immutable:
                continue  # reweighting shifts the population; transporting would change who a person is
            if transform == "quantile_smooth" and feature.category is not None:
                continue  # an indicator's quantile function is a step: nothing to smooth
            if transform == "tilt":
                curves = tilt_curves(feature.values, taus, settings, data)
            else:
                curves = transport_curves(feature, taus, transform, settings, data)
            curves["target"] = feature.original(curves["target"])
            tables.append(curve_table(transform, feature.name, taus, curves))
    table = pd.concat(tables, ignore_index=True)
    write_atomically(context.run_dir / CURVES_FILE, table.to_csv(index=False))
    plots = context.run_dir / "plots"
    immutable = [f.name for f in features if f.immutable]

    def figures() -> dict[str, Path]:
        paths = {
            "stress/tilt": stress_curve_panels(table, ("tilt",), plots / "stress_tilt.png", title, settings),
        }
        if set(settings.transforms) - {"tilt"}:
            transports = tuple(t for t in settings.transforms if t != "tilt")
            paths["stress/quantile"] = stress_curve_panels(
                table, transports, plots / "stress_quantile.png", title, settings, untransported=immutable
            )
        return paths

    context.draw(figures)
    return _keys(table, settings, data.rows.metric_names())


def _stress_pixels(
    context: EvaluationContext, settings: StressSettings, data: Unstressed, title: str
) -> dict[str, float]:
    means = patch_means(context.dataset.x_test, settings.patch)
    height, width = means.shape[1:]
    taus = stress_levels(settings.levels)
    tables = []
    for position, values in enumerate(means.flatten(1).T):
        if values.max() == values.min():
            continue  # a constant pixel (MNIST's border) cannot be stressed: its map cell stays blank
        table = curve_table("tilt", "pixels", taus, tilt_curves(values, taus, settings, data))
        tables.append(table.assign(row=position // width, col=position % width))
    table = pd.concat(tables, ignore_index=True)
    write_atomically(context.run_dir / PIXELS_FILE, table.to_csv(index=False))
    unstressed_metrics = {name: float(value) for name, value in _uniform_metrics(data).items()}
    plots = context.run_dir / "plots"
    shape = (height, width)
    context.draw(
        lambda: {
            "stress/pixels": pixel_maps(
                table, unstressed_metrics, shape, plots / "stress_pixels.png", title, settings
            ),
            "stress/pixel_classes": pixel_class_maps(
                table, unstressed_metrics, shape, plots / "stress_pixel_classes.png", title, settings
            ),
        }
    )
    keys = {}
    chosen = _key_metrics(settings, data.rows.metric_names())
    for (metric, tau), values in table[table["metric"].isin(chosen)].groupby(["metric", "tau"])["value"]:
        if _is_key_level(tau, settings):
            keys[f"stress/pixels/{metric}/tilt/{tau:+g}/min"] = float(values.min())
            keys[f"stress/pixels/{metric}/tilt/{tau:+g}/max"] = float(values.max())
    return keys


def _keys(table: pd.DataFrame, settings: StressSettings, metric_names: tuple[str, ...]) -> dict[str, float]:
    """``stress/<feature>/<metric>/<transform>/<τ>`` for the key metrics at the key levels."""
    chosen = _key_metrics(settings, metric_names)
    rows = table[table["metric"].isin(chosen) & table["tau"].map(lambda tau: _is_key_level(tau, settings))]
    return {
        f"stress/{row.feature}/{row.metric}/{row.transform}/{row.tau:+g}": float(row.value)
        for row in rows.itertuples()
    }


def _key_metrics(settings: StressSettings, metric_names: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics reported as keys: data.stress.key_metrics, or all but the per-class mean probabilities."""
    if settings.key_metrics is None:
        return tuple(name for name in metric_names if not name.startswith("mean_prob_"))
    unknown = [name for name in settings.key_metrics if name not in metric_names]
    if unknown:
        raise ConfigError(
            f"data.stress.key_metrics names {', '.join(unknown)}, not a stress metric of this data; "
            f"available: {', '.join(metric_names)}"
        )
    return settings.key_metrics


def _is_key_level(tau: float, settings: StressSettings) -> bool:
    return any(math.isclose(tau, level, abs_tol=1e-9) for level in settings.key_levels)


def _uniform_metrics(data: Unstressed) -> dict[str, torch.Tensor]:
    return weighted_metrics(torch.ones(len(data.labels), dtype=torch.float64), data.rows)
