"""OOD detection evaluation: one post-hoc detector on a fitted classifier, OpenOOD v1.5 style.

Logits and features of the ID train/val/test splits and of every OOD set come from the feature cache
(one inference pass per model and inputs, shared by every detector and hyperparameter candidate).
Hyperparameters not fixed in the config are chosen on a validation OOD set that is disjoint from every
test OOD set (`data.ood_benchmark.val`), by AUROC against the ID validation split, as OpenOOD does.

Metrics: `cls/acc`; per test set `ood/<set>/{auroc,aupr_in,aupr_out,fpr95}` (OOD positive, higher score
= more OOD, FPR95 = share of ID flagged at 95 % OOD recall) and `ood/<set>/oscr` (the open-set
classification rate of the classifier with the detector as its reject option, trustbench.metrics.osr);
`ood/near/*` and `ood/far/*` as means over the near and far sets; `ood/val/auroc` of the chosen
candidate; `hp/<name>` for each chosen value.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from omegaconf import OmegaConf

from trustbench.data.loaders import TensorDataModule
from trustbench.errors import ConfigError
from trustbench.evaluation.context import EvaluationContext
from trustbench.methods.ood.cache import FeatureCache
from trustbench.methods.ood.detector import DETECTORS, Detector, Features, NetworkDetector, build
from trustbench.metrics.ood import ood_metrics
from trustbench.metrics.osr import oscr
from trustbench.plots.ood import roc_curves, score_histograms
from trustbench.progress import progress

OOD_KEYS = ("auroc", "aupr_in", "aupr_out", "fpr95", "oscr")


class DetectorScorer:
    """Scores one split with a fitted detector: from cached features, or by running the network."""

    def __init__(self, context: EvaluationContext) -> None:
        self.backbone = context.module.backbone
        self.batch_size = context.datamodule.eval_batch_size

    def __call__(self, detector: Detector, features: Features, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(detector, NetworkDetector):
            return detector.score(features)
        self.backbone.eval()
        device = next(self.backbone.parameters()).device
        parts = [
            detector.score_inputs(self.backbone, x[start : start + self.batch_size].to(device)).cpu()
            for start in range(0, len(x), self.batch_size)
        ]
        return torch.cat(parts)


def candidate_hparams(detector_cls: type[Detector], fixed: dict[str, Any], train: Features) -> list[dict]:
    """Every combination of the detector's grid for the hyperparameters the config leaves free."""
    grid = {key: values for key, values in detector_cls.hparam_grid(train).items() if key not in fixed}
    keys = sorted(grid)
    combinations = itertools.product(*(grid[key] for key in keys))
    return [dict(fixed, **dict(zip(keys, values, strict=True))) for values in combinations]


def evaluate_ood(context: EvaluationContext) -> dict[str, float]:
    """Fit the configured detector, tune it on the validation OOD set, score every test OOD set."""
    cfg, datamodule = context.cfg, context.datamodule
    detector_cfg = cfg.method.detector
    detector_cls = DETECTORS.get(detector_cfg.name)
    if detector_cls is None:
        valid = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown OOD detector {detector_cfg.name!r}; choose one of: {valid}")
    benchmark = cfg.data.ood_benchmark
    backbone = context.module.backbone
    cache = FeatureCache(cfg.paths.feature_cache, backbone, batch_size=datamodule.eval_batch_size)
    head = backbone.head if detector_cls.needs_head else None
    score = DetectorScorer(context)

    fit_on = _fit_features(detector_cls, cache, datamodule)
    test = cache.features(datamodule.x_test, datamodule.y_test)
    fixed = OmegaConf.to_container(detector_cfg.hparams, resolve=True) if detector_cfg.get("hparams") else {}
    hparams, val_auroc = _tune(context, detector_cls, fixed, fit_on, head, cache, score, benchmark.val)
    detector = build(detector_cls.name, **hparams).fit(fit_on, head=head)

    id_scores = score(detector, test, datamodule.x_test)
    correct = test.logits.argmax(dim=1) == datamodule.y_test
    metrics = {"cls/acc": float(correct.float().mean())}
    ood_scores = {}
    for name, x_ood in context.ood_inputs([*benchmark.near, *benchmark.far]).items():
        ood_scores[name] = score(detector, cache.features(x_ood), x_ood)
        for key, value in ood_metrics(id_scores, ood_scores[name]).items():
            metrics[f"ood/{name}/{key}"] = value
        metrics[f"ood/{name}/oscr"] = oscr(id_scores, correct, ood_scores[name])
    for group in ("near", "far"):
        for key in OOD_KEYS:
            values = [metrics[f"ood/{name}/{key}"] for name in benchmark[group]]
            if values:
                metrics[f"ood/{group}/{key}"] = sum(values) / len(values)
    if val_auroc is not None:
        metrics["ood/val/auroc"] = val_auroc
    metrics.update({f"hp/{key}": float(value) for key, value in hparams.items() if _is_number(value)})
    _plot(context, detector_cls.name, id_scores, ood_scores)
    return metrics


def _fit_features(
    detector_cls: type[Detector], cache: FeatureCache, datamodule: TensorDataModule
) -> Features:
    """The ID features the detector fits on, per its `fit_split`: the training or whole validation split."""
    if detector_cls.fit_split == "train":
        return cache.features(datamodule.x_train, datamodule.y_train)
    if not len(datamodule.x_val):
        raise ConfigError(
            f"OOD detector {detector_cls.name!r} fits on the ID validation split, which is empty "
            "(data.val_size=0); set data.val_size above 0"
        )
    return cache.features(datamodule.x_val, datamodule.y_val)


def _tune(
    context: EvaluationContext,
    detector_cls: type[Detector],
    fixed: dict[str, Any],
    fit_on: Features,
    head: torch.nn.Linear | None,
    cache: FeatureCache,
    score: DetectorScorer,
    val_set: str,
) -> tuple[dict[str, Any], float | None]:
    """The candidate with the best validation AUROC (first one on ties), and that AUROC."""
    candidates = candidate_hparams(detector_cls, fixed, fit_on)
    if not context.cfg.method.detector.get("tune", True) or len(candidates) <= 1:
        return (candidates[0] if candidates else fixed), None
    rows = context.cfg.method.detector.get("tune_rows", 2000)
    x_val, y_val = context.datamodule.x_val[:rows], context.datamodule.y_val[:rows]
    x_val_ood = context.ood_inputs([val_set])[val_set][:rows]
    val_id = cache.features(x_val, y_val)
    val_ood = cache.features(x_val_ood)
    best, best_auroc = candidates[0], -1.0
    for candidate in progress(candidates, f"tuning {detector_cls.name}"):
        detector = build(detector_cls.name, **candidate).fit(fit_on, head=head)
        auroc = ood_metrics(score(detector, val_id, x_val), score(detector, val_ood, x_val_ood))["auroc"]
        if auroc > best_auroc:
            best, best_auroc = candidate, auroc
    return best, best_auroc


def _plot(
    context: EvaluationContext, detector: str, id_scores: torch.Tensor, ood_scores: dict[str, torch.Tensor]
) -> None:
    title = f"{detector} on {context.cfg.backbone.name} trained on {context.cfg.data.name}"
    plots = context.run_dir / "plots"
    context.draw(
        lambda: {
            "ood/score_histograms": score_histograms(id_scores, ood_scores, plots / "ood_scores.png", title),
            "ood/roc": roc_curves(id_scores, ood_scores, plots / "ood_roc.png", title),
        }
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
