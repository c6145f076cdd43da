"""The contract every counterfactual explainer keeps, and the registry that builds them by config name.

An explainer gets a differentiable classifier (inputs → logits, in model-input space), a batch of inputs,
one target class per input and the dataset's :class:`Constraints`, and returns counterfactuals for the
whole batch at once: (N, *shape), or (N, k, *shape) for explainers that return k diverse counterfactuals
per input. Explainers that need a generative model (a VAE, an autoencoder) or statistics of the training
data build them in ``fit``, which the counterfactual suite calls once per run before ``explain``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor

from trustbench.errors import ConfigError
from trustbench.methods.base import TrustModule
from trustbench.methods.counterfactual.constraints import Constraints
from trustbench.methods.ood.cache import FeatureCache, extract_features
from trustbench.methods.ood.detector import Features
from trustbench.metrics.counterfactual import median_absolute_deviation

Classifier = Callable[[Tensor], Tensor]
"""Maps a batch of model inputs to logits, differentiably (gradient explainers backpropagate through it)."""


@dataclass(frozen=True)
class ExplanationData:
    """What an explainer may learn from before explaining: the training split and the fitted model.

    `x_train`/`y_train` are normalised as the model sees them. `module` is the trained method; its
    ``backbone`` (``features`` and ``head``) serves explainers that work on the representation (DeDUCE's
    GMM), and VCNet's explainer decodes with the conditional VAE its module trained.
    `cache_dir` is where generative models trained for explanation are stored, keyed by their config and
    the data, so a sweep over explainers trains each one once. `seed` seeds everything the explainer draws.
    `feature_cache` (the run's, for ``module.backbone``) serves the training split's logits and features
    to every run on the same model; without it they are computed.
    """

    x_train: Tensor
    y_train: Tensor
    num_classes: int
    constraints: Constraints
    module: TrustModule
    dataset_name: str
    cache_dir: Path
    seed: int
    feature_cache: FeatureCache | None = None

    def train_features(self, batch_size: int = 512) -> Features:
        """The backbone's logits and penultimate features on `x_train`, from the feature cache if any."""
        if self.feature_cache is not None:
            return self.feature_cache.features(self.x_train)
        return extract_features(self.module.backbone, self.x_train, batch_size)

    def median_absolute_deviation(self) -> Tensor:
        """MAD of every input element over `x_train` (float64, numpy's median), from the feature cache if
        any: the scale the ``cf/mad_l1`` metric divides by, so explainers that weigh distances by it
        minimise the distance they are scored with."""
        if self.feature_cache is not None:
            return self.feature_cache.statistic("mad", self.x_train, median_absolute_deviation)
        return median_absolute_deviation(self.x_train)


EXPLAINERS: dict[str, type[Explainer]] = {}


class Explainer(ABC):
    """A counterfactual explainer. Subclasses set `name` (the config name), which registers them.

    `returns_sets` is True for explainers that return k counterfactuals per input (N, k, *shape).
    `explains_uncertainty` is True for explainers (CLUE) whose goal is lower predictive uncertainty rather
    than a target class; they still receive `target` (the predicted class) and should keep it.
    """

    name: ClassVar[str]
    returns_sets: ClassVar[bool] = False
    explains_uncertainty: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in EXPLAINERS:
                raise ValueError(f"Two explainers are named {cls.name!r}; config names must be unique.")
            EXPLAINERS[cls.name] = cls

    def fit(self, data: ExplanationData) -> Explainer:
        """Learn what the explainer needs from the training data; explainers needing nothing keep this."""
        return self

    @abstractmethod
    def explain(self, model: Classifier, x: Tensor, target: Tensor, constraints: Constraints) -> Tensor:
        """Counterfactuals for every row of `x` (N, *shape) towards `target` (N,) class indices.

        The result respects `constraints` (call ``constraints.snap`` on the final answer). An input for
        which no valid counterfactual was found still gets the explainer's best attempt: validity is
        measured by the suite, never assumed.
        """


def build(name: str, **hparams: Any) -> Explainer:
    """The explainer registered as `name`, built with `hparams`; a wrong name lists the valid ones."""
    if name not in EXPLAINERS:
        raise ConfigError(
            f"Unknown counterfactual explainer {name!r}; valid names: {', '.join(sorted(EXPLAINERS))}."
        )
    cls = EXPLAINERS[name]
    allowed = _hyperparameters(cls)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ConfigError(
            f"counterfactual explainer {name!r} has no hyperparameter {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}."
        )
    return cls(**hparams)


def _hyperparameters(cls: type[Explainer]) -> list[str]:
    """Constructor arguments of `cls`, following ``**kwargs`` that are passed on to a base class."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__ or klass is object:
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names += [p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return list(dict.fromkeys(names))
