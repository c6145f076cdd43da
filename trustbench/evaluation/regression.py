"""Regression evaluation: accuracy, likelihood, intervals, calibration and ranking of the uncertainty.

On the test split, in the target's own units (predictions are moved back from the standardised units the
model trains in): ``reg/rmse``, ``reg/mae``, ``reg/nll``, ``reg/ause_rmse`` and ``reg/aurg_rmse`` (and
``reg/ause_absrel``, ``reg/aurg_absrel`` when every target is positive), ``reg/coverage90`` and
``reg/width90`` (the central 90 % interval of the predictive distribution, or the conformal interval when
``method.conformal`` is set), ``reg/qce``, ``reg/spearman``, ``reg/aleatoric`` and ``reg/epistemic`` (mean
variances, target units squared), and for each set of ``data.ood`` ``reg/ood/<set>/auroc`` (the
uncertainty scored as an OOD detector, OOD positive). Conventions: :mod:`trustbench.metrics.regression`.
For a dense target (``data.dense``) every pixel of every test image is a row of these metrics.

Post-hoc parts are fitted here on the stored main model: SLURP's side learner (``method.side_learner``, on
the training split) and the conformal interval (``method.conformal``, calibrated on the validation split).

Plots in ``<run_dir>/plots``: ``sparsification.png``, ``calibration.png``, ``intervals.png``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from trustbench.evaluation.context import EvaluationContext
from trustbench.methods.regression.base import RegressionPrediction, concatenate_predictions
from trustbench.methods.regression.conformal import ConformalInterval
from trustbench.methods.regression.slurp import SideSettings, Slurp
from trustbench.metrics import regression as reg
from trustbench.metrics.ood import ood_metrics
from trustbench.plots.regression import calibration_plot, interval_plot, sparsification_plot

Predictor = Callable[[Tensor], RegressionPrediction]
LEVEL = 0.9


def evaluate_regression(context: EvaluationContext) -> dict[str, float]:
    """The metrics and plots of the module docstring."""
    cfg, datamodule = context.cfg, context.datamodule
    predictor = _predictor(context)
    loc, scale = context.dataset.target_scale
    y = (datamodule.y_test * scale + loc).flatten()  # a dense target: one row per pixel
    test = _predict(predictor, datamodule.x_test, datamodule.eval_batch_size)
    distribution = test.distribution.rescaled(loc, scale)
    mean = distribution.mean()
    lower, upper = distribution.quantile((1 - LEVEL) / 2), distribution.quantile((1 + LEVEL) / 2)
    metrics: dict[str, float] = {}
    if cfg.method.get("conformal"):
        lower, upper, metrics["reg/conformal_q"] = _conformal(
            cfg.method.conformal.score, predictor, test, context
        )
    curves = {"rmse": reg.sparsification(test.uncertainty, mean, y, "rmse")}
    if bool((y > 0).all()):
        curves["absrel"] = reg.sparsification(test.uncertainty, mean, y, "absrel")
    metrics |= {
        "reg/rmse": reg.rmse(mean, y),
        "reg/mae": reg.mae(mean, y),
        "reg/nll": reg.nll(distribution.log_prob(y)),
        "reg/coverage90": reg.coverage(lower, upper, y),
        "reg/width90": reg.width(lower, upper),
        "reg/qce": reg.quantile_calibration_error(distribution.cdf(y)),
        "reg/spearman": reg.spearman(test.uncertainty, mean, y),
        "reg/aleatoric": float(distribution.aleatoric().mean()),
        "reg/epistemic": float(distribution.epistemic().mean()),
    }
    for name, curve in curves.items():
        metrics[f"reg/ause_{name}"], metrics[f"reg/aurg_{name}"] = curve.ause, curve.aurg
    for name, x_ood in context.ood_inputs(list(cfg.data.get("ood", []))).items():
        ood = _predict(predictor, x_ood, datamodule.eval_batch_size)
        metrics[f"reg/ood/{name}/auroc"] = ood_metrics(test.uncertainty, ood.uncertainty)["auroc"]

    plots, title = context.run_dir / "plots", f"{cfg.method.name} · {cfg.backbone.name} · {cfg.data.name}"
    context.draw(
        lambda: {
            "reg/sparsification": sparsification_plot(curves, plots / "sparsification.png", title),
            "reg/calibration": calibration_plot(distribution.cdf(y), plots / "calibration.png", title),
            "reg/intervals": interval_plot(y, mean, lower, upper, plots / "intervals.png", title, LEVEL),
        }
    )
    return metrics


def _predictor(context: EvaluationContext) -> Predictor:
    """The module's own prediction, or SLURP's side learner fitted now on the frozen module."""
    settings = context.cfg.method.get("side_learner")
    if not settings:
        return context.module.predict
    y_train = context.datamodule.y_train
    slurp = Slurp(context.module, SideSettings(**settings), float(y_train.max() - y_train.min()))
    slurp.fit(
        context.datamodule.x_train.to(context.module.device),
        y_train.to(context.module.device),
        context.cfg.seed,
    )
    return slurp.predict


@torch.no_grad()
def _predict(predictor: Predictor, x: Tensor, batch_size: int) -> RegressionPrediction:
    """`predictor` on all of `x` in batches, on CPU (the distribution in standardised units)."""
    parts = [predictor(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return concatenate_predictions(parts)


def _conformal(
    score: str, predictor: Predictor, test: RegressionPrediction, context: EvaluationContext
) -> tuple[Tensor, Tensor, float]:
    """The 90 % conformal interval around the `test` predictions, calibrated on the validation split: its
    bounds in target units, and q̂ in the units of its score (target units for residuals)."""
    datamodule = context.datamodule
    loc, scale = context.dataset.target_scale
    if len(datamodule.y_val) == 0:
        raise ValueError("conformal intervals are calibrated on the validation split; set data.val_size > 0")
    calibration = _predict(predictor, datamodule.x_val, datamodule.eval_batch_size).distribution
    interval = ConformalInterval.calibrate(
        datamodule.y_val.flatten(), calibration.mean(), calibration.variance().sqrt(), score, 1 - LEVEL
    )
    lower, upper = interval.bounds(test.distribution.mean(), test.distribution.variance().sqrt())
    unit = scale if score == "residual" else 1.0
    return lower * scale + loc, upper * scale + loc, interval.quantile * unit
