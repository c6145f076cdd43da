"""The supervisor benchmark's test sets: the nominal test set and four non-nominal ones, as the model sees
them (normalised), following Weiss, García Gómez & Tonella ("Generating and detecting true ambiguity: a
forgotten danger in DNN supervision testing", EMSE 2023, ``supervisor_benchmark/test_set.py``).

- ``nominal``: ``points`` test images, a seeded choice.
- ``ambiguous``: AmbiGuess images of the ID classes (:mod:`trustbench.data.ambiguess`), trained on the raw
  training images and cached under ``<model_store>/ambiguess``.
- ``invalid``: the first ``points`` test images of another dataset (``invalid``: Fashion-MNIST for MNIST
  and the reverse, as the paper), adapted to the ID shape like every OOD set.
- ``corrupted``: the nominal images, image i under corruption i mod 7 of :mod:`trustbench.data.shifts`
  at ``severity``. MNIST-C mixes 15 corruptions (shot and impulse noise, glass and motion blur, shear,
  scale, rotation, brightness, translation, stripes, fog, spatter, dotted lines, zigzags, Canny edges);
  the seven here are CIFAR-10-C's Gaussian and shot noise, blur, contrast, brightness, pixelation and a
  rotation, the corruptions the shift suite already defines.
- ``adversarial``: the nominal images the model classifies correctly, each at the smallest ℓ∞ ε at which
  DeepFool, or FGSM, BIM or PGD at an ε of ``eps`` (``steps`` steps), flips its prediction, as the
  reference's foolbox attacks (:mod:`trustbench.attacks.minimal`); images no attack flips are dropped.
  The attacks differentiate the method's whole prediction (:mod:`trustbench.attacks.objective`), so every
  method is attacked through its own uncertainty machinery (one sampled pass per step for MC dropout).

Settings are ``data.supervisors`` (:class:`SupervisorSettings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from trustbench.attacks.minimal import minimal_adversarial
from trustbench.attacks.objective import Objective
from trustbench.config_blocks import checked_keys
from trustbench.data import shifts
from trustbench.data.ambiguess import AmbiGuessSettings, AmbiguousSet, generate_ambiguous
from trustbench.errors import ConfigError
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.points import input_range, seeded_rows

NON_NOMINAL = ("ambiguous", "invalid", "corrupted", "adversarial")


@dataclass(frozen=True)
class SupervisorSettings:
    """``data.supervisors``: the test sets' sizes and recipes and which supervisors a run scores.

    `posthoc_for` names the methods whose runs also score every post-hoc detector and the VAE on their
    backbone (one classifier is enough for them; the others score their own uncertainty only).
    `detectors` lists the post-hoc detectors, or ``all`` registered ones. The VAE is trained for
    `vae_epochs` on the first `vae_rows` training images (null: all).
    """

    invalid: str = ""
    points: int = 1000
    severity: int = 3
    eps: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
    steps: int = 10
    posthoc_for: tuple[str, ...] = ("erm",)
    detectors: tuple[str, ...] | str = "all"
    vae_epochs: int = 5
    vae_rows: int | None = None
    ambiguess: AmbiGuessSettings = field(default_factory=AmbiGuessSettings)

    @classmethod
    def from_config(cls, settings: Mapping[str, Any] | None) -> SupervisorSettings:
        """The settings of ``data.supervisors``; a missing `invalid` set, a wrong key or value: one line."""
        given = checked_keys(cls, settings, "data.supervisors")
        if not given.get("invalid"):
            raise ConfigError(
                "data.supervisors.invalid must name the dataset whose images are invalid inputs "
                "(e.g. fashion_mnist for mnist)"
            )
        given["ambiguess"] = AmbiGuessSettings.from_config(
            given.get("ambiguess"), "data.supervisors.ambiguess"
        )
        for key in ("eps", "posthoc_for"):
            if key in given:
                given[key] = tuple(given[key])
        if given.get("detectors", "all") != "all":
            given["detectors"] = tuple(given["detectors"])
        chosen = cls(**given)
        if min(chosen.points, chosen.steps, chosen.vae_epochs) < 1 or not chosen.eps or min(chosen.eps) <= 0:
            raise ConfigError("data.supervisors: points, steps and vae_epochs must be >= 1 and every eps > 0")
        shifts.check_corruption(next(iter(shifts.CORRUPTIONS)), chosen.severity)
        return chosen


@dataclass(frozen=True)
class SupervisorSets:
    """The nominal inputs (N×…, normalised) and their labels, each non-nominal set's inputs, and what was
    generated to make them."""

    nominal: Tensor
    nominal_labels: Tensor
    non_nominal: dict[str, Tensor]
    ambiguous: AmbiguousSet
    adversarial_eps: Tensor
    adversarial_attacks: tuple[str, ...]


def build_supervisor_sets(context: EvaluationContext, settings: SupervisorSettings) -> SupervisorSets:
    """The nominal and the four non-nominal sets of the module docstring for this run's data and model."""
    cfg, dataset, datamodule = context.cfg, context.dataset, context.datamodule
    if dataset.kind != "image":
        raise ConfigError(f"the supervisors suite needs image data; {dataset.name!r} is {dataset.kind} data")
    rows = seeded_rows(len(dataset.x_test), settings.points, cfg.seed)
    raw = dataset.x_test[rows]
    ambiguous = generate_ambiguous(
        dataset.x_train,
        dataset.y_train,
        dataset.num_classes,
        settings.ambiguess,
        Path(cfg.paths.model_store) / "ambiguess",
        dataset.name,
        cfg.seed,
    )
    invalid = context.ood_inputs([settings.invalid])[settings.invalid][: settings.points]
    nominal = datamodule.normalize_inputs(raw)
    module = context.module.eval()

    def probabilities(inputs: Tensor) -> Tensor:
        return module.predict(inputs).probs

    adversarial = minimal_adversarial(
        Objective(probabilities, 1, cfg.method.name),
        nominal.to(module.device),
        dataset.y_test[rows].to(module.device),
        settings.eps,
        settings.steps,
        tuple(bound.to(module.device) for bound in input_range(context)),
        cfg.seed,
    )
    return SupervisorSets(
        nominal=nominal,
        nominal_labels=dataset.y_test[rows],
        non_nominal={
            "ambiguous": datamodule.normalize_inputs(ambiguous.images),
            "invalid": invalid,
            "corrupted": datamodule.normalize_inputs(mixed_corruptions(raw, settings.severity, cfg.seed)),
            "adversarial": adversarial.inputs,
        },
        ambiguous=ambiguous,
        adversarial_eps=adversarial.eps,
        adversarial_attacks=adversarial.attacks,
    )


def mixed_corruptions(images: Tensor, severity: int, seed: int) -> Tensor:
    """Raw images, image i under corruption i mod 7 (:data:`shifts.CORRUPTIONS` order) at `severity`."""
    corrupted = images.clone()
    names = list(shifts.CORRUPTIONS)
    for index, name in enumerate(names[: len(images)]):  # fewer than 7 images: the first corruptions
        chosen = slice(index, None, len(names))
        corrupted[chosen] = shifts.corrupt(images[chosen], name, severity, seed)
    return corrupted
