"""Supervisors: every score of a fitted run that could flag an input as untrustworthy (higher = flag).

A run scores its method's own uncertainty and, for the methods named in ``posthoc_for``, every post-hoc
detector and a VAE's reconstruction error on the same classifier. Row names of the supervisor table:

- the method's ``predict`` uncertainty, under the method's name (``duq``, ``ddu``, ``sngp``, ``erm``: the
  softmax entropy, ...);
- MC dropout and deep ensembles score their sampled softmax outputs (T or M × N × K, one draw shared by
  every score): ``<method>_entropy`` (predictive entropy), ``<method>_mutual_information`` (BALD) and,
  for MC dropout, ``mc_dropout_variation_ratio``: 1 − f_mode / T, f_mode the number of samples voting
  for the most voted class (Freeman 1965, as uncertainty-wizard's ``VariationRatio`` in the reference);
- post-hoc detectors (:mod:`trustbench.methods.ood`), each under its config name, with its default
  hyperparameters (the reference tunes nothing either), fitted on cached training features;
- ``vae``: the reconstruction loss of a VAE trained on the training images (the counterfactual family's
  :func:`~trustbench.methods.counterfactual.generative.trained_vae`, cached with it): summed pixel-wise
  binary cross-entropy of the posterior mean's decoding, as the reference's VAE supervisor scores
  its reconstruction loss.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from trustbench.evaluation.context import EvaluationContext, predict_all
from trustbench.evaluation.ood import DetectorScorer, _fit_features
from trustbench.evaluation.supervisor_sets import SupervisorSettings
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.explainer import ExplanationData
from trustbench.methods.counterfactual.generative import VAE, GenerativeConfig, trained_vae
from trustbench.methods.ood import DETECTORS, build
from trustbench.methods.ood.cache import FeatureCache
from trustbench.methods.uncertainty.ensemble import DeepEnsemble
from trustbench.methods.uncertainty.mc_dropout import MCDropout, mutual_information
from trustbench.metrics.ood import entropy_score

Supervisor = Callable[[Tensor], dict[str, Tensor]]
"""Normalised inputs (N×…) → one score per input (N,) for each supervisor it computes, by row name."""


def variation_ratio(sample_probs: Tensor) -> Tensor:
    """1 − (votes for the most voted class) / T for T × N × K sampled distributions, in [0, 1 − 1/T]."""
    votes = torch.nn.functional.one_hot(sample_probs.argmax(dim=2), sample_probs.shape[2]).sum(dim=0)
    return 1 - votes.amax(dim=1).to(torch.float64) / len(sample_probs)


def sampled_scores(name: str, sample_probs: Tensor, with_variation_ratio: bool) -> dict[str, Tensor]:
    """Entropy, mutual information (and variation ratio) of one draw of T × N × K distributions."""
    scores = {
        f"{name}_entropy": entropy_score(sample_probs.mean(dim=0)),
        f"{name}_mutual_information": mutual_information(sample_probs),
    }
    if with_variation_ratio:
        scores[f"{name}_variation_ratio"] = variation_ratio(sample_probs)
    return scores


def method_supervisor(context: EvaluationContext) -> Supervisor:
    """The method's own uncertainty, or its sampled scores for MC dropout and deep ensembles."""
    module, name = context.module, context.cfg.method.name
    batch_size = context.datamodule.eval_batch_size

    @torch.inference_mode()
    def samples(x: Tensor) -> Tensor:
        module.eval()
        draw = module.sample_probs if isinstance(module, MCDropout) else module.member_probs
        parts = [draw(x[i : i + batch_size].to(module.device)).cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(parts, dim=1)

    def score(x: Tensor) -> dict[str, Tensor]:
        if isinstance(module, MCDropout | DeepEnsemble):
            return sampled_scores(name, samples(x), isinstance(module, MCDropout))
        return {name: predict_all(module, x, batch_size).uncertainty}

    return score


def posthoc_supervisor(context: EvaluationContext, settings: SupervisorSettings) -> Supervisor:
    """Every chosen post-hoc detector on the run's classifier, fitted once, plus the VAE (module doc)."""
    cfg, datamodule = context.cfg, context.datamodule
    names = sorted(DETECTORS) if settings.detectors == "all" else list(settings.detectors)
    unknown = sorted(set(names) - set(DETECTORS))
    if unknown:
        raise ValueError(
            f"data.supervisors.detectors: unknown detector {', '.join(unknown)}; "
            f"choose from {', '.join(sorted(DETECTORS))} or all"
        )
    backbone = context.module.backbone
    cache = FeatureCache(cfg.paths.feature_cache, backbone, batch_size=datamodule.eval_batch_size)
    scorer = DetectorScorer(context)
    detectors = {}
    for name in names:
        detector_cls = DETECTORS[name]
        head = backbone.head if detector_cls.needs_head else None
        detectors[name] = build(name).fit(_fit_features(detector_cls, cache, datamodule), head=head)
    vae = _trained_vae(context, settings)

    def score(x: Tensor) -> dict[str, Tensor]:
        features = cache.features(x)
        scores = {name: scorer(detector, features, x) for name, detector in detectors.items()}
        with torch.no_grad():
            parts = [
                vae.space.negative_log_likelihood(vae.decoder(vae.encode(batch)), batch)
                for batch in x.split(datamodule.eval_batch_size)
            ]
        scores["vae"] = torch.cat(parts)
        return scores

    return score


def _trained_vae(context: EvaluationContext, settings: SupervisorSettings) -> VAE:
    """The VAE of the supervisor settings on the (first `vae_rows`) training images, cached."""
    cfg, datamodule, dataset = context.cfg, context.datamodule, context.dataset
    rows = slice(None, settings.vae_rows)
    data = ExplanationData(
        x_train=datamodule.x_train[rows],
        y_train=datamodule.y_train[rows],
        num_classes=dataset.num_classes,
        constraints=Constraints.for_dataset(dataset, datamodule.normalize_inputs),
        module=context.module,
        dataset_name=dataset.name,
        cache_dir=Path(cfg.paths.model_store) / "supervisors",
        seed=cfg.seed,
    )
    return trained_vae(data, GenerativeConfig(epochs=settings.vae_epochs))
