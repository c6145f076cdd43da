"""The explanations suite: attribution maps of the configured method on a fixed set of test points, scored
for faithfulness and robustness (``xai/`` keys, definitions in :mod:`trustbench.metrics.explanations`).

The classifier is the run's model (for the post-hoc attribution methods, the ERM classifier of the model
store, so every method of a sweep explains the same network). Settings are ``method.xai``:

- ``points`` test points, the first of a seeded permutation; each is explained for its predicted class.
- ``xai/deletion_auc`` ↓ and ``xai/insertion_auc`` ↑: area under the target probability as the most
  relevant features are set to the baseline (black image, training mean row), or restored from it, in
  ``steps`` chunks.
- ``xai/randomisation_spearman`` ↓: Spearman correlation of |map| before and after re-initialising the
  top ``randomise_layers`` layers (Adebayo et al. 2018); near 1 fails the sanity check.
- ``samples`` inputs x + δ with δ uniform in [−``radius``, ``radius``] per feature (model-input units) give
  ``xai/max_sensitivity`` ↓, ``xai/lipschitz`` ↓ and, as means over the samples, ``xai/topk_intersection``
  ↑ (the ``topk`` share of features) and ``xai/spearman`` ↑ between the clean and the perturbed map.
- ``xai/seconds_per_map``, wall time of the clean maps per point; ``cls/acc`` of the explained model.
- With ``attack_eps`` > 0, for saliency and gradient × input: the attacks on explanations of
  :mod:`trustbench.evaluation.explanation_attacks` (``xai/attack/...``, ``xai/attack_smoothed/...``).

Artefacts: ``plots/xai_maps.png`` (inputs beside their maps; images) or ``plots/xai_features.png`` (the
most relevant table features), ``xai_maps.pt`` (the rows, targets and maps).
"""

from __future__ import annotations

import io
import logging
import time
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from trustbench.data.arrays import ArrayDataset
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.points import input_range, seeded_rows
from trustbench.methods.explanations.sanity import randomised_copy
from trustbench.metrics.classification import accuracy
from trustbench.metrics.explanations import (
    curve_auc,
    finite_mean,
    local_lipschitz,
    max_sensitivity,
    removal_curve,
    spearman,
    topk_intersection,
)
from trustbench.plots.explanations import feature_bars, saliency_grid
from trustbench.results.record import write_bytes_atomically

log = logging.getLogger("trustbench")

if TYPE_CHECKING:  # captum takes most of a second to import: only runs that explain pay for it
    from trustbench.methods.explanations.attributions import Attribution


class MapMaker:
    """Relevance maps (N × pixels or N × columns) of one attribution method for fixed targets."""

    def __init__(
        self, attribution: Attribution, target: Tensor, baseline: Tensor, groups: Tensor | None
    ) -> None:
        self.attribution, self.target, self.baseline, self.groups = attribution, target, baseline, groups

    def __call__(self, model: nn.Module, x: Tensor) -> Tensor:
        from trustbench.methods.explanations.attributions import relevance_map

        raw = self.attribution.attribute(model, x, self.target, self.baseline, self.groups)
        return relevance_map(raw).detach()


def evaluate_explanations(context: EvaluationContext) -> dict[str, float]:
    """The metrics and artefacts of the module docstring."""
    from trustbench.methods.explanations.attributions import build

    cfg, datamodule, dataset = context.cfg, context.datamodule, context.dataset
    settings = cfg.method.xai
    attribution = build(cfg.method.attribution.name, **cfg.method.attribution.get("hparams", {}))
    model = context.module.backbone.eval()
    test = context.prediction("test", datamodule.x_test)
    rows = seeded_rows(len(datamodule.x_test), int(settings.points), cfg.seed)
    x, target = datamodule.x_test[rows], test.probs[rows].argmax(dim=1)
    make_maps = MapMaker(attribution, target, explanation_baseline(context), feature_groups(dataset))

    started = time.perf_counter()
    maps = make_maps(model, x)
    seconds = (time.perf_counter() - started) / len(x)

    def probabilities(inputs: Tensor) -> Tensor:
        return model(inputs).softmax(dim=1)

    steps = int(settings.steps)
    baseline = make_maps.baseline
    deletion = removal_curve(probabilities, x, maps, target, baseline, steps)
    insertion = removal_curve(probabilities, x, maps, target, baseline, steps, insertion=True)
    randomised = randomised_copy(model, int(settings.randomise_layers), cfg.seed)
    randomised_maps = make_maps(randomised, x)

    generator = torch.Generator().manual_seed(cfg.seed)
    radius = float(settings.radius)
    noise = (torch.rand((int(settings.samples), *x.shape), generator=generator) * 2 - 1) * radius
    x_perturbed = x + noise
    perturbed = torch.stack([make_maps(model, x_s) for x_s in x_perturbed])
    k = max(1, round(float(settings.topk) * maps[0].numel()))
    metrics = {
        "xai/deletion_auc": curve_auc(deletion),
        "xai/insertion_auc": curve_auc(insertion),
        "xai/randomisation_spearman": spearman(maps.abs(), randomised_maps.abs()),
        "xai/max_sensitivity": max_sensitivity(maps, perturbed),
        "xai/lipschitz": local_lipschitz(maps, perturbed, x, x_perturbed),
        "xai/topk_intersection": torch.stack([topk_intersection(maps, p, k) for p in perturbed]).mean(0),
        "xai/spearman": torch.stack([spearman(maps, p) for p in perturbed]).mean(0),
    }
    report = {key: finite_mean(values) for key, values in metrics.items()}
    report["xai/seconds_per_map"] = seconds
    report["cls/acc"] = accuracy(test.probs, datamodule.y_test)
    if float(settings.get("attack_eps", 0)) > 0:
        report |= _attacks(context, model, x, target, attribution.name)
    _write_artefacts(context, rows, x, target, maps, attribution.name)
    return report


def explanation_baseline(context: EvaluationContext) -> Tensor:
    """The "absent feature" input, 1 × *shape in model space: black images, the training mean row."""
    datamodule = context.datamodule
    if context.dataset.kind == "image":
        return datamodule.normalize_inputs(torch.zeros(1, *context.dataset.input_shape))
    return datamodule.x_train.mean(dim=0, keepdim=True)


def feature_groups(dataset: ArrayDataset) -> Tensor | None:
    """For tables, each encoded column's feature index (a one-hot group shares one); None for images."""
    if dataset.tabular is None:
        return None
    groups = torch.arange(dataset.input_shape[0])
    for group in dataset.tabular.categorical_groups:
        groups[list(group)] = group[0]
    return groups


def _attacks(context: EvaluationContext, model: nn.Module, x: Tensor, target: Tensor, name: str) -> dict:
    """The attacks on explanations (trustbench/evaluation/explanation_attacks.py) for gradient maps, and
    their picture, ``plots/xai_attacks.png``: the maps before and after each attack, and the target."""
    from trustbench.evaluation.explanation_attacks import GRADIENT_METHODS, attack_metrics

    if name not in GRADIENT_METHODS:
        log.info(
            "attacks on explanations target gradient maps (%s); not %s", ", ".join(GRADIENT_METHODS), name
        )
        return {}
    settings = context.cfg.method.xai
    points = int(settings.attack_points)
    bounds = input_range(context)
    metrics, maps = attack_metrics(model, x[:points], target[:points], settings, name, bounds)
    if context.dataset.kind == "image":
        titles = [f"predicted {t}" for t in target[:points].tolist()]
        path = context.run_dir / "plots" / "xai_attacks.png"
        context.draw(lambda: {"xai/attacks": saliency_grid(x, maps, titles, path, max_columns=6)})
    return metrics


def _write_artefacts(
    context: EvaluationContext, rows: Tensor, x: Tensor, target: Tensor, maps: Tensor, name: str
) -> None:
    buffer = io.BytesIO()
    torch.save({"test_row": rows, "target": target, "maps": maps}, buffer)
    write_bytes_atomically(context.run_dir / "xai_maps.pt", buffer.getvalue())
    plots = context.run_dir / "plots"
    class_names = context.dataset.class_names
    if context.dataset.kind == "image":
        titles = [f"predicted {class_names[t] if class_names else t}" for t in target.tolist()]
        context.draw(lambda: {"xai/maps": saliency_grid(x, {name: maps}, titles, plots / "xai_maps.png")})
    else:
        meta = context.dataset.tabular
        names = list(meta.feature_names) if meta else [str(i) for i in range(maps.shape[1])]
        context.draw(lambda: {"xai/maps": feature_bars(maps, names, plots / "xai_features.png")})
