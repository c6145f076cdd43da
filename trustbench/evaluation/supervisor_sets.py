"""The supervisor benchmark's test sets: the nominal test set and four non-nominal ones, as the model sees
them (normalised), following Weiss, García Gómez & Tonella ("Generating and detecting true ambiguity: a
forgotten danger in DNN supervision testing", EMSE 2023, ``supervisor_benchmark/test_set.py``).

- ``nominal``: ``points`` test images, a seeded choice.
- ``ambiguous``: AmbiGuess images of the ID classes (:mod:`trustbench.data.ambiguess`), trained on the raw
  training images and cached under ``<model_store>/ambiguess``.
- ``invalid``: the first ``points`` test images of another dataset (``invalid``: Fashion-MNIST for MNIST
  and the reverse, as the paper), adapted to the ID shape like every OOD set.
- ``corrupted``: the nominal images, image i under corruption i mod k of the family ``corruptions``
  names, as the paper's MNIST-C / FMNIST-C sets mix their corruptions. ``mnist_c`` (the default on
  1×28×28 images, and only there): MNIST-C's 15 corruptions at its authors' fixed severities (shot and
  impulse noise, glass and motion blur, shear, scale, rotation, brightness, translation, stripes, fog,
  spatter, dotted lines, zigzags, Canny edges; :mod:`trustbench.data.mnist_c`). ``cifar_c`` (the default
  on other images): the shift suite's seven corruptions (:mod:`trustbench.data.shifts`: CIFAR-10-C's
  Gaussian and shot noise, blur, contrast, brightness, pixelation, and a rotation) at ``severity``.
- ``adversarial``: the nominal images the model classifies correctly, each at the smallest ℓ∞ ε at which
  DeepFool, or FGSM, BIM or PGD at an ε of ``eps`` (``steps`` steps), flips its prediction, as the
  reference's foolbox attacks (:mod:`trustbench.attacks.minimal`); images no attack flips are dropped.
  The attacks differentiate the method's whole prediction (:mod:`trustbench.attacks.objective`), so every
  method is attacked through its own uncertainty machinery (one sampled pass per step for MC dropout).

Settings are ``data.supervisors`` (:class:`SupervisorSettings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor

from trustbench.attacks.minimal import minimal_adversarial
from trustbench.attacks.objective import Objective
from trustbench.config_blocks import checked_keys
from trustbench.data import mnist_c, shifts
from trustbench.data.ambiguess import AmbiGuessSettings, AmbiguousSet, generate_ambiguous
from trustbench.errors import ConfigError
from trustbench.evaluation.context import EvaluationContext
from trustbench.evaluation.points import input_range, seeded_rows

NON_NOMINAL = ("ambiguous", "invalid", "corrupted", "adversarial")
CORRUPTION_FAMILIES = ("mnist_c", "cifar_c")


@dataclass(frozen=True)
class SupervisorSettings:
    """``data.supervisors``: the test sets' sizes and recipes and which supervisors a run scores.

    `posthoc_for` names the methods whose runs also score every post-hoc detector and the VAE on their
    backbone (one classifier is enough for them; the others score their own uncertainty only).
    `detectors` lists the post-hoc detectors, or ``all`` registered ones. The VAE is trained for
    `vae_epochs` on the first `vae_rows` training images (null: all). `corruptions` names the corrupted
    set's family (:data:`CORRUPTION_FAMILIES`; null: by the image shape); `severity` applies to cifar_c.
    """

    invalid: str = ""
    points: int = 1000
    corruptions: str | None = None
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
        if chosen.corruptions is not None and chosen.corruptions not in CORRUPTION_FAMILIES:
            raise ConfigError(
                f"data.supervisors.corruptions must be one of {', '.join(CORRUPTION_FAMILIES)} (or null: "
                f"mnist_c on 1x28x28 images, cifar_c otherwise); got {chosen.corruptions!r}"
            )
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
    family = corruption_family(settings, dataset.x_test.shape[1:])
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
    corrupted = mixed_corruptions(raw, family, settings.severity, cfg.seed)
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
            "corrupted": datamodule.normalize_inputs(corrupted),
            "adversarial": adversarial.inputs,
        },
        ambiguous=ambiguous,
        adversarial_eps=adversarial.eps,
        adversarial_attacks=adversarial.attacks,
    )


def corruption_family(settings: SupervisorSettings, image_shape: Sequence[int]) -> str:
    """The corrupted set's family: `settings.corruptions`, or by default mnist_c on 1×28×28 images and
    cifar_c on others; mnist_c on another shape is refused in one line."""
    grayscale_28 = tuple(image_shape) == mnist_c.IMAGE_SHAPE
    family = settings.corruptions or ("mnist_c" if grayscale_28 else "cifar_c")
    if family == "mnist_c" and not grayscale_28:
        raise ConfigError(
            "data.supervisors.corruptions=mnist_c needs 1x28x28 images (MNIST-C's corruptions are defined on "
            f"them); this dataset's images are {'x'.join(map(str, image_shape))}: use cifar_c"
        )
    return family


def mixed_corruptions(images: Tensor, family: str, severity: int, seed: int) -> Tensor:
    """Raw images, image i under corruption i mod k of `family` (mnist_c: :data:`mnist_c.MNIST_C`, k = 15;
    cifar_c: :data:`shifts.CORRUPTIONS` at `severity`, k = 7), in those registries' order."""
    if family == "mnist_c":
        corruptions = [partial(mnist_c.corrupt, name=name) for name in mnist_c.MNIST_C]
    else:
        corruptions = [partial(shifts.corrupt, name=name, severity=severity) for name in shifts.CORRUPTIONS]
    corrupted = images.clone()
    for index, corrupt in enumerate(corruptions[: len(images)]):  # fewer images than k: the first ones
        chosen = slice(index, None, len(corruptions))
        corrupted[chosen] = corrupt(images[chosen], seed=seed)
    return corrupted
