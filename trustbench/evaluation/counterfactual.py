"""Counterfactual evaluation: explain a fixed set of test points with the configured explainer, then score.

The classifier is the run's trained model (for post-hoc explainers, the ERM classifier of the model store,
so every explainer in a sweep explains the same network). The explainer is fitted once (generative models,
MAD, feature densities), asked for counterfactuals of all chosen points in one batched call, timed, and
scored by :func:`~trustbench.metrics.counterfactual.counterfactual_report` (``cf/...`` keys, definitions
there) plus ``cf/seconds_per_cf``, wall time divided by the number of counterfactuals, and ``cls/acc``, the
test accuracy of the classifier being explained.

Which points and targets (``method.explain``):

- ``points`` test points, the first of a seeded permutation of those that qualify. ``factuals: negative``
  (the default for binary tasks, as in CARLA) takes points predicted in class 0, the unfavourable
  outcome, with target 1; ``all`` takes any point; ``uncertain`` takes the ``points`` test points of
  highest predictive entropy (the inputs CLUE and its variants are meant for).
- ``targets: other`` asks each point for one counterfactual into the class the model ranks second (the
  other class for binary tasks); ``all`` asks for every other class (DeDUCE's protocol: K − 1 per point).

Uncertainty explainers (CLUE) have no target: they receive the predicted class. For every explainer (so
one table holds CLUE's family and target-class explainers) the suite reports ``cf/entropy_before`` and
``cf/entropy_after``, the mean predictive entropy of the model at the inputs and at their counterfactuals,
and ``cf/made_certain``, the share of counterfactuals whose entropy is below ``certain_entropy`` nats
(GLAM-CLUE's "share of the group made certain"); ``cf/diversity`` and ``cf/count_diversity`` are NaN
(undefined) for explainers that return one counterfactual per input. For images ``realism: true``
adds ``cf/im1`` under per-class autoencoders. ``cf/fit_seconds`` is the explainer's ``fit`` (generative
models loaded or trained, GLAM-CLUE's translations learnt), apart from ``cf/seconds_per_cf``.

Two views beside the minimality metrics, each on when its setting is a mapping (``{}`` for defaults):

- ``prototypes``: ``cf/prototype_l2``, the latent L2 distance of each valid counterfactual to its target
  class's prototype (the mean code of the class's training rows) in an autoencoder of those
  :class:`~trustbench.methods.counterfactual.generative.GenerativeConfig` settings, trained once and
  cached; ``cf/prototype_l2_input`` is the same for the inputs, so the table shows how far each explainer
  moves toward the prototype (users edit toward it, not minimally).
- ``regions`` (images; :mod:`~trustbench.methods.counterfactual.regions`: ``stroke``, ``background``,
  ``{quadrants: [...]}``, ``{cells: [...]}``): ``cf/leakage``, the mean L1 change outside each input's
  regions over all counterfactuals, for every explainer; region-targeted explainers are given the masks.
- ``entropy_attribution`` (images; settings of
  :class:`~trustbench.methods.counterfactual.uncertainty_attribution.PathEntropyAttribution`): the
  entropy of the explained points attributed to pixels by the path integral from CLUE's fiducial, by
  integrated gradients (captum) from the black image and from a blurred copy, and by CLUE's map
  |x − x_f|, each scored by :mod:`~trustbench.metrics.uncertainty_attribution` (blurred pixels, up to
  a fifth of the image): ``cf/attr/<path|ig_black|ig_blur|clue>/<eic|aic|urc>``, plus
  ``cf/attr/completeness_error``, the mean |Σ attribution − (H(x) − H(x_f))| of the path integral.
- ``tangent``: ``cf/tangent_share``, the mean share ‖P δ‖² / ‖δ‖² of each valid counterfactual's change
  δ = x' − x that lies in the data manifold's tangent space at x, estimated as the column space of the
  decoder Jacobian at the input's code of the VAE of those
  :class:`~trustbench.methods.counterfactual.generative.GenerativeConfig` settings (the one the latent
  explainers search when the settings match; :mod:`~trustbench.metrics.tangent`): near 1 for changes
  along the manifold (diffeomorphic counterfactuals), near L / D for pixel-space attacks' noise.
- ``oracle``: ``cf/oracle_agreement``, the share of valid counterfactuals that an oracle of another
  architecture trained on all the data (:mod:`~trustbench.methods.counterfactual.oracle`, settings
  :class:`~trustbench.methods.counterfactual.oracle.OracleConfig`) also assigns to the target.

Artefacts in the run dir: ``counterfactuals.csv``, every counterfactual with its test row, target,
predicted class, validity and distances (:func:`~trustbench.plots.counterfactual.counterfactual_records`),
for tables also in original units (:func:`~trustbench.plots.counterfactual.with_original_units`), for
images with ``counterfactuals.pt`` holding the tensors; ``plots/counterfactuals.png`` for images,
``cf_changed_features.csv``/``.md`` for tables.
"""

from __future__ import annotations

import inspect
import math
import time
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from trustbench.evaluation.context import EvaluationContext
from trustbench.methods.counterfactual import Explainer, ExplanationData, build
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.counterfactual.generative import (
    GenerativeConfig,
    predictive_entropy,
    train_class_autoencoders,
    trained_autoencoder,
    trained_vae,
)
from trustbench.methods.counterfactual.oracle import OracleConfig, trained_oracle
from trustbench.methods.counterfactual.regions import region_masks
from trustbench.methods.ood.cache import FeatureCache
from trustbench.metrics.classification import accuracy
from trustbench.metrics.counterfactual import (
    class_prototypes,
    counterfactual_report,
    im1,
    leakage,
    oracle_agreement,
    prototype_distance,
    valid_mask,
)
from trustbench.metrics.tangent import decoder_jacobian, tangent_share
from trustbench.metrics.uncertainty_attribution import gaussian_blur, removal_curves
from trustbench.plots.counterfactual import (
    changed_features,
    counterfactual_records,
    image_grid,
    save_changed_features,
    save_counterfactuals,
    with_original_units,
)

FACTUALS = ("negative", "all", "uncertain")
TARGETS = ("other", "all")
REMOVED_SHARES = torch.linspace(0.0, 0.2, 11)
"""Shares of pixels removed along the entropy attributions' removal curves (up to a fifth of the image)."""


def evaluate_counterfactual(context: EvaluationContext) -> dict[str, float]:
    """The metrics and artefacts of the module docstring."""
    cfg, datamodule, dataset = context.cfg, context.datamodule, context.dataset
    settings = cfg.method.explain
    backbone = context.module.backbone.eval()
    constraints = Constraints.for_dataset(dataset, datamodule.normalize_inputs)
    data = ExplanationData(
        x_train=datamodule.x_train,
        y_train=datamodule.y_train,
        num_classes=dataset.num_classes,
        constraints=constraints,
        module=context.module,
        dataset_name=dataset.name,
        cache_dir=Path(cfg.paths.model_store) / "explainers",
        seed=cfg.seed,
        feature_cache=FeatureCache(cfg.paths.feature_cache, backbone, batch_size=datamodule.eval_batch_size),
    )
    started = time.perf_counter()
    explainer = build(cfg.method.explainer.name, **cfg.method.explainer.get("hparams", {})).fit(data)
    fit_seconds = time.perf_counter() - started

    test = context.prediction("test", datamodule.x_test)
    rows = _factual_rows(test.probs, settings, dataset.num_classes, cfg.seed)
    x, target = _queries(datamodule.x_test[rows], test.probs[rows], settings, explainer)
    query_rows = rows.repeat_interleave(len(target) // len(rows))
    # The model's probabilities at each query, from the test predictions already made (no second pass).
    probs = test.probs[query_rows]
    regions = None
    if settings.get("regions") is not None:
        regions = region_masks(settings.regions, x, constraints.lower, constraints.upper)
    targeted = {"regions": regions} if getattr(explainer, "targets_regions", False) else {}
    started = time.perf_counter()
    x_cf = explainer.explain(backbone, x, target, constraints, **targeted).detach()
    seconds = time.perf_counter() - started

    shape = dataset.input_shape
    with torch.inference_mode():
        logits_cf = _logits(backbone, x_cf, shape)
    train_pred = data.train_features().logits.argmax(dim=-1)
    report = counterfactual_report(
        x,
        x_cf,
        target,
        logits_cf.argmax(dim=-1),
        constraints,
        datamodule.x_train,
        datamodule.y_train,
        train_pred,
        mad=data.median_absolute_deviation(),
    )
    report["cf/seconds_per_cf"] = seconds / max(logits_cf.shape[:-1].numel(), 1)
    report["cf/fit_seconds"] = fit_seconds
    report["cls/acc"] = accuracy(test.probs, datamodule.y_test)  # of the classifier being explained
    entropy_after = predictive_entropy(logits_cf)
    report["cf/entropy_before"] = predictive_entropy(probs.clamp_min(1e-12).log()).mean().item()
    report["cf/entropy_after"] = entropy_after.mean().item()
    certain = float(settings.get("certain_entropy", 0.1))
    report["cf/made_certain"] = (entropy_after < certain).to(torch.float64).mean().item()
    for key in ("cf/diversity", "cf/count_diversity"):
        report.setdefault(key, math.nan)
    valid = valid_mask(logits_cf.argmax(dim=-1), target)
    if regions is not None:
        report["cf/leakage"] = _finite_mean(leakage(x, x_cf, regions).reshape(-1))
    if settings.get("prototypes") is not None:
        report |= _prototype_distances(data, settings.prototypes, x, x_cf, target, valid, shape)
    if settings.get("tangent") is not None:
        report["cf/tangent_share"] = _tangent_share(data, settings.tangent, x, x_cf, valid, shape)
    if settings.get("entropy_attribution") is not None:
        y = datamodule.y_test[query_rows]
        report |= _entropy_attribution(data, settings.entropy_attribution, backbone, x, y)
    if settings.get("oracle") is not None:
        oracle = _oracle(context, settings.oracle)
        with torch.inference_mode():
            oracle_pred = _logits(oracle, x_cf, shape).argmax(dim=-1)
        report["cf/oracle_agreement"] = oracle_agreement(oracle_pred, logits_cf.argmax(dim=-1), target)
    if dataset.kind == "image" and settings.get("realism"):
        autoencoders = [ae.eval() for ae in train_class_autoencoders(data)]
        flat_cf, flat_target = _flat_sets(x_cf, target, shape)
        _, flat_original = _flat_sets(x_cf, probs.argmax(dim=1), shape)
        with torch.inference_mode():
            report["cf/im1"] = _finite_mean(im1(flat_cf, flat_target, flat_original, autoencoders))
    records = counterfactual_records(
        query_rows, x, x_cf, target, logits_cf.argmax(dim=-1), constraints.categorical_groups
    )
    _write_artefacts(context, records, x, x_cf, target, probs, logits_cf)
    return report


def _factual_rows(probs: Tensor, settings: dict, num_classes: int, seed: int) -> Tensor:
    """Indices of the test points to explain: `points` of a seeded permutation of the qualifying ones."""
    factuals = settings.get("factuals") or ("negative" if num_classes == 2 else "all")
    if factuals not in FACTUALS:
        raise ValueError(f"method.explain.factuals={factuals!r}; choose one of {', '.join(FACTUALS)}")
    qualifying = torch.arange(len(probs))
    if factuals == "uncertain":
        entropy = predictive_entropy(probs.clamp_min(1e-12).log())
        return entropy.argsort(descending=True)[: int(settings.points)].sort().values
    if factuals == "negative":
        if num_classes != 2:
            raise ValueError(
                "method.explain.factuals=negative explains points predicted in class 0 of a binary task, "
                f"but the data has {num_classes} classes; use factuals=all"
            )
        qualifying = qualifying[probs.argmax(dim=1) == 0]
    order = torch.randperm(len(qualifying), generator=torch.Generator().manual_seed(seed))
    return qualifying[order[: int(settings.points)]].sort().values


def _queries(x: Tensor, probs: Tensor, settings: dict, explainer: Explainer) -> tuple[Tensor, Tensor]:
    """Inputs repeated once per target, and the targets: the predicted class for uncertainty explainers,
    else the runner-up class (`other`) or every other class (`all`)."""
    ranked = probs.argsort(dim=1, descending=True)
    if explainer.explains_uncertainty:
        return x, ranked[:, 0]
    targets = settings.get("targets", "other")
    if targets not in TARGETS:
        raise ValueError(f"method.explain.targets={targets!r}; choose one of {', '.join(TARGETS)}")
    if targets == "other":
        return x, ranked[:, 1]
    others = ranked[:, 1:]
    return x.repeat_interleave(others.shape[1], dim=0), others.reshape(-1)


def _logits(
    backbone: torch.nn.Module, x: Tensor, element_shape: tuple[int, ...], batch: int = 1024
) -> Tensor:
    """Logits of inputs shaped (*leading, *element_shape), computed in batches, shaped (*leading, K)."""
    leading = x.shape[: x.ndim - len(element_shape)]
    flat = x.reshape(-1, *element_shape)
    device = next(backbone.parameters()).device
    parts = [backbone(flat[i : i + batch].to(device)).float().cpu() for i in range(0, len(flat), batch)]
    return torch.cat(parts).reshape(*leading, -1)


def _prototype_distances(
    data: ExplanationData,
    generative: dict,
    x: Tensor,
    x_cf: Tensor,
    target: Tensor,
    valid: Tensor,
    shape: tuple[int, ...],
) -> dict[str, float]:
    """``cf/prototype_l2`` (valid counterfactuals) and ``cf/prototype_l2_input`` (inputs), see the module
    docstring; the autoencoder is trained on the training split, the prototypes from its true labels."""
    autoencoder = trained_autoencoder(data, GenerativeConfig.from_mapping(generative))
    with torch.inference_mode():
        prototypes = class_prototypes(
            _encoded_rows(autoencoder, data.x_train), data.y_train, data.num_classes
        )
        flat_cf, flat_target = _flat_sets(x_cf, target, shape)
        to_cf = prototype_distance(_encoded_rows(autoencoder, flat_cf), flat_target, prototypes)
        to_input = prototype_distance(_encoded_rows(autoencoder, x), target, prototypes)
    return {
        "cf/prototype_l2": _finite_mean(to_cf[valid.reshape(-1).cpu()]),
        "cf/prototype_l2_input": _finite_mean(to_input),
    }


def _tangent_share(
    data: ExplanationData,
    generative: dict,
    x: Tensor,
    x_cf: Tensor,
    valid: Tensor,
    shape: tuple[int, ...],
) -> float:
    """``cf/tangent_share`` (module docstring): the tangent space at each input, shared by its set."""
    vae = trained_vae(data, GenerativeConfig.from_mapping(generative))
    with torch.no_grad():
        jacobian = decoder_jacobian(vae.decode, vae.encode(x))
    per_input = x_cf[0].numel() // torch.Size(shape).numel()
    delta = x_cf.reshape(-1, *shape) - x.repeat_interleave(per_input, dim=0)
    shares = tangent_share(delta, jacobian.repeat_interleave(per_input, dim=0))
    return _finite_mean(shares[valid.reshape(-1).cpu()])


def _entropy_attribution(
    data: ExplanationData, settings: dict, backbone: torch.nn.Module, x: Tensor, y: Tensor
) -> dict[str, float]:
    """The ``cf/attr/...`` keys of the module docstring for the explained images `x` (labels `y`)."""
    # captum takes most of a second to import: only runs that attribute the entropy pay for it
    from captum.attr import IntegratedGradients

    from trustbench.methods.counterfactual.uncertainty_attribution import PathEntropyAttribution, entropy_of

    allowed = sorted(inspect.signature(PathEntropyAttribution).parameters)
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ValueError(
            f"method.explain.entropy_attribution has no setting {', '.join(unknown)}; "
            f"valid: {', '.join(allowed)}"
        )
    attribution = PathEntropyAttribution(**settings).fit(data)
    found = attribution.attribute(backbone, x, data.constraints)
    drop = found.entropy_input - found.entropy_fiducial
    blurred = gaussian_blur(x)
    integrated = IntegratedGradients(entropy_of(backbone))
    maps = {
        "path": found.total,
        "ig_black": integrated.attribute(
            x, baselines=data.constraints.lower.expand_as(x), n_steps=attribution.bins
        ),
        "ig_blur": integrated.attribute(x, baselines=blurred, n_steps=attribution.bins),
        "clue": (x - found.fiducial).abs(),
    }
    report = {"cf/attr/completeness_error": (found.total.flatten(1).sum(dim=1) - drop).abs().mean().item()}
    for name, relevance in maps.items():
        curves = removal_curves(backbone, x, y, relevance.detach(), blurred, REMOVED_SHARES)
        report |= {f"cf/attr/{name}/{key}": value for key, value in curves.summary().items()}
    return report


def _encoded_rows(autoencoder: torch.nn.Module, x: Tensor, batch: int = 1024) -> Tensor:
    return torch.cat([autoencoder.encode(x[i : i + batch]) for i in range(0, len(x), batch)])


def _oracle(context: EvaluationContext, settings: dict) -> torch.nn.Module:
    """The oracle trained on every labelled row of the dataset (train, validation and test), cached."""
    datamodule, dataset, cfg = context.datamodule, context.dataset, context.cfg
    x = torch.cat([datamodule.x_train, datamodule.x_val, datamodule.x_test])
    y = torch.cat([datamodule.y_train, datamodule.y_val, datamodule.y_test])
    cache = Path(cfg.paths.model_store) / "explainers"
    return trained_oracle(
        x, y, dataset.num_classes, OracleConfig.from_mapping(settings), cache, dataset.name, cfg.seed
    )


def _flat_sets(x_cf: Tensor, labels: Tensor, element_shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Counterfactuals as one flat batch, and `labels` (one per input) repeated for each of them."""
    per_input = x_cf[0].numel() // torch.Size(element_shape).numel()
    return x_cf.reshape(-1, *element_shape), labels.repeat_interleave(per_input)


def _finite_mean(values: Tensor) -> float:
    finite = values[values.isfinite()]
    return finite.mean().item() if len(finite) else float("nan")


def _write_artefacts(
    context: EvaluationContext,
    records: pd.DataFrame,
    x: Tensor,
    x_cf: Tensor,
    target: Tensor,
    probs: Tensor,
    logits_cf: Tensor,
) -> None:
    """Every counterfactual (``records``, plus the tensors for images or original units for tables), and an
    image grid or the changed-features table, in the run dir; the grid also to W&B."""
    meta = context.dataset.tabular
    if meta is None:
        save_counterfactuals(records, context.run_dir, x, x_cf)
    else:
        encoded, encoded_cf = _encoded(context, x), _encoded(context, x_cf)
        save_counterfactuals(with_original_units(records, encoded, encoded_cf, x_cf, meta), context.run_dir)
        save_changed_features(changed_features(encoded, encoded_cf, meta), context.run_dir)
    if context.dataset.kind == "image":
        path = context.run_dir / "plots" / "counterfactuals.png"
        probs_cf, names = logits_cf.softmax(dim=-1), context.dataset.class_names
        context.draw(
            lambda: {"cf/examples": image_grid(x, x_cf, probs, probs_cf, target, path, class_names=names)}
        )


def _encoded(context: EvaluationContext, x: Tensor) -> Tensor:
    """Tabular rows from model space back to the encoder's (min-max scaled, one-hot): undoes
    ``data.normalize`` when it is set."""
    if context.datamodule.normalization is None:
        return x
    mean, std = context.datamodule.normalization
    return x * std + mean
