"""Metric curves of a trained model as one quantity of its test rows is stressed, level by level, with bands.

Each transform gives, per stress level τ, the target the quantity was moved to (in original units) and
every metric of :mod:`trustbench.metrics.stress`. Bands are the 5 % and 95 % points over bootstrap
resamples of the test rows (multinomial counts, the same resamples for every feature and transform): the
entropic projection is solved again on each resample (its weights are λ_i ∝ c_i exp(ξ x_i)), while the
transports keep the map they computed on the whole sample and only resample its rows, so their bands
show the metric's sampling noise, not the transport's. Diagnostics come as extra metrics without bands:
``kl`` (KL of the weights to the uniform, the price of the stress) and ``ess`` (Kish's effective number
of rows) for the tilt, ``moved`` (share of rows changed) for transports and, for a continuous feature,
``w2`` (how far it moved, in original units: the W2 distance between its old and new marginals, the map
being monotone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from trustbench.methods.base import Prediction
from trustbench.metrics.stress import RowQuantities, row_quantities, weighted_metrics
from trustbench.stress.features import TabularFeature
from trustbench.stress.grid import stress_targets
from trustbench.stress.settings import StressSettings
from trustbench.stress.tilting import effective_sample_size, kl_to_base, tilt_distinct
from trustbench.stress.transport import (
    isotonic_transport,
    lower_quantile_index,
    polynomial_transport,
    rank_order,
    share_transport,
)

CURVE_COLUMNS = ("transform", "feature", "tau", "target", "metric", "value", "low", "high")
BAND = (0.05, 0.95)


@dataclass(frozen=True)
class Unstressed:
    """The model's one prediction pass on the test rows, and what a transport needs to predict moved rows."""

    x: Tensor  # encoded test rows, before the datamodule's normalisation
    labels: Tensor
    groups: dict[str, Tensor]
    prediction: Prediction
    rows: RowQuantities
    predict: Callable[[Tensor], Prediction]  # moved encoded rows → the model's prediction on them
    resamples: Tensor  # (B, n) bootstrap counts; B may be 0


def unstressed(
    x: Tensor,
    labels: Tensor,
    groups: dict[str, Tensor],
    prediction: Prediction,
    predict: Callable[[Tensor], Prediction],
    settings: StressSettings,
) -> Unstressed:
    """Bundle the test rows and their one prediction pass, drawing ``settings.bootstrap`` resamples."""
    rows = row_quantities(prediction.probs, prediction.uncertainty, labels, groups)
    return Unstressed(x, labels, groups, prediction, rows, predict, bootstrap_counts(len(labels), settings))


def bootstrap_counts(length: int, settings: StressSettings) -> Tensor:
    """``settings.bootstrap`` multinomial resamples of ``length`` rows, as counts (B × n, float64)."""
    generator = torch.Generator().manual_seed(settings.seed)
    draws = torch.randint(length, (settings.bootstrap, length), generator=generator)
    counts = torch.zeros(settings.bootstrap, length, dtype=torch.float64)
    return counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=torch.float64))


def tilt_curves(
    values: Tensor, taus: Tensor, settings: StressSettings, data: Unstressed
) -> dict[str, Tensor]:
    """Entropic projection of ``values`` to each level's target mean: {"target", metrics..., "kl", "ess"},
    each (L,), plus ``<metric>/low`` and ``<metric>/high`` bands when resamples are drawn.

    The weights depend on a row only through its value, so the sample and all its resamples are solved
    together on the distinct values, and their metrics come from the mean quantities of the rows sharing
    a value (:meth:`RowQuantities.pooled`), never from n weights per level."""
    targets = stress_targets(values, taus, settings.alpha, float(values.mean()))
    support, row_value = torch.unique(values, return_inverse=True)
    bases = torch.cat([torch.ones(1, len(values), dtype=torch.float64), data.resamples])  # sample, resamples
    masses = torch.zeros(len(bases), len(support), dtype=torch.float64).index_add_(1, row_value, bases)
    weights = tilt_distinct(support, masses, targets).weights  # (1 + B) × L × K
    metrics = weighted_metrics(weights, data.rows.pooled(row_value, len(support), bases))
    curves = {"target": targets} | {metric: per_base[0] for metric, per_base in metrics.items()}
    curves |= _bands({metric: per_base[1:] for metric, per_base in metrics.items()})
    return curves | {
        "kl": kl_to_base(weights[0], masses[0]),
        "ess": effective_sample_size(weights[0], masses[0]),
    }


def transport_curves(
    feature: TabularFeature, taus: Tensor, transform: str, settings: StressSettings, data: Unstressed
) -> dict[str, Tensor]:
    """A quantile transport of ``feature`` (``quantile`` or ``quantile_smooth``; a category's share for a
    one-hot feature) at each level, the moved rows predicted again: the same entries as :func:`tilt_curves`
    with ``w2`` and ``moved`` as diagnostics; NaN at levels without a target."""
    generator = torch.Generator().manual_seed(settings.seed)
    values = feature.values
    if feature.category is not None:
        targets = stress_targets(values, taus, settings.alpha, float(values.mean()))
        reachable = targets.isfinite()
        group = data.x[:, list(feature.columns)]
        moved = share_transport(group, feature.category, targets[reachable].tolist(), generator)
        blocks = list(moved.to(data.x.dtype))
        moved_values = moved[:, :, feature.category].to(torch.float64)
    else:
        order = rank_order(values, generator)
        centre = float(values[order][lower_quantile_index(len(values), settings.quantile_level)])
        targets = stress_targets(values, taus, settings.alpha, centre)
        reachable = targets.isfinite()
        level, wanted = settings.quantile_level, targets[reachable].tolist()
        if transform == "quantile":
            moved_values = torch.stack([isotonic_transport(values, [(level, t)], order) for t in wanted])
        else:
            moved_values = polynomial_transport(values, level, wanted, settings.degree, order)
        blocks = [level_values[:, None].to(data.x.dtype) for level_values in moved_values]
    per_level = [_moved_metrics(feature.columns, block, data) for block in blocks]
    shift = moved_values - values
    found = {
        metric: torch.stack([level[metric] for level in per_level]) for metric in per_level[0]
    }  # (L', 1+B)
    found["moved"] = (shift != 0).to(torch.float64).mean(dim=1, keepdim=True)
    if feature.category is None:
        found["w2"] = shift.square().mean(dim=1, keepdim=True).sqrt() * feature.width
    curves = {"target": targets}
    for metric, values_found in found.items():
        full = torch.full((len(taus), values_found.shape[1]), torch.nan, dtype=torch.float64)
        full[reachable] = values_found
        curves[metric] = full[:, 0]
        curves |= _bands({metric: full[:, 1:].T})
    return curves


def curve_table(transform: str, feature: str, taus: Tensor, curves: dict[str, Tensor]) -> pd.DataFrame:
    """Curves as long rows of :data:`CURVE_COLUMNS`: one per level and metric (bands NaN where none)."""
    metrics = [name for name in curves if name != "target" and "/" not in name]
    missing = torch.full_like(taus, torch.nan)

    def stacked(suffix: str) -> np.ndarray:
        return torch.cat([curves.get(f"{metric}{suffix}", missing) for metric in metrics]).numpy()

    return pd.DataFrame(
        {
            "transform": transform,
            "feature": feature,
            "tau": np.tile(taus.numpy(), len(metrics)),
            "target": np.tile(curves["target"].numpy(), len(metrics)),
            "metric": np.repeat(metrics, len(taus)),
            "value": stacked(""),
            "low": stacked("/low"),
            "high": stacked("/high"),
        }
    )


def _moved_metrics(columns: tuple[int, ...], block: Tensor, data: Unstressed) -> dict[str, Tensor]:
    """Metrics on the test rows with ``columns`` set to ``block`` (n × |columns|): the changed rows are
    predicted again, the others keep the one pass. Entry 0 is the whole sample, then each resample."""
    changed = (block != data.x[:, list(columns)]).any(dim=1)
    probs, uncertainty = data.prediction.probs.clone(), data.prediction.uncertainty.clone()
    if changed.any():
        rows = data.x[changed].clone()
        rows[:, list(columns)] = block[changed]
        again = data.predict(rows)
        probs[changed] = again.probs.to(probs.dtype)
        uncertainty[changed] = again.uncertainty.to(uncertainty.dtype)
    quantities = row_quantities(probs, uncertainty, data.labels, data.groups)
    weights = torch.cat([torch.ones(1, len(data.labels), dtype=torch.float64), data.resamples])
    return weighted_metrics(weights, quantities)


def _bands(samples: dict[str, Tensor]) -> dict[str, Tensor]:
    """``<metric>/low`` and ``<metric>/high``: the 5 % and 95 % points of each metric's resampled values
    (B × L) over the resamples; none when there are no resamples."""
    bands = {}
    for metric, values in samples.items():
        if len(values):
            low, high = torch.nanquantile(values, torch.tensor(BAND, dtype=torch.float64), dim=0)
            bands |= {f"{metric}/low": low, f"{metric}/high": high}
    return bands
