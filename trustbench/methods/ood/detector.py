"""The contract every post-hoc OOD detector keeps, and the registry that builds them by config name.

Convention (after pytorch-ood): ``fit`` sees in-distribution data once (the training split, or the
validation split for a detector whose `fit_split` is "val"); ``score`` returns one number per example where
**higher means more out-of-distribution**. Detectors that score confidence in their paper return its
negation. Most detectors work on cached :class:`Features` so a sweep runs the network once;
:class:`NetworkDetector` subclasses (ODIN) need the inputs and run the model themselves.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from torch import Tensor, nn

from trustbench.backbones.base import Backbone

State = TypeVar("State")
HparamGrid = dict[str, list[Any]]


@dataclass
class Features:
    """What one inference pass over a split yields, as the feature cache stores it.

    `logits` is N×K; `features` is the N×D penultimate representation the backbone's `head` maps to
    the logits (None when the backbone has no separate feature layer); `labels` holds int64 class
    indices (None for OOD sets).
    """

    logits: Tensor
    features: Tensor | None = None
    labels: Tensor | None = None


DETECTORS: dict[str, type[Detector]] = {}


class Detector(ABC):
    """A post-hoc OOD detector: ``fit`` on ID training data, then ``score`` (higher = more OOD).

    Subclasses set `name` (the config name; defining it registers the class in :data:`DETECTORS`),
    `needs_features` (uses penultimate features), `needs_head` (uses the classifier's last linear
    layer, passed to ``fit``), `needs_network` (must run the model on inputs itself) and `fit_split`
    (the ID split the runner passes to ``fit``: "train", or "val" where the reference fits on validation
    data).
    """

    name: ClassVar[str]
    fit_split: ClassVar[Literal["train", "val"]] = "train"
    needs_features: ClassVar[bool] = False
    needs_head: ClassVar[bool] = False
    needs_network: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in DETECTORS:
                raise ValueError(f"Two OOD detectors are named {cls.name!r}; config names must be unique.")
            DETECTORS[cls.name] = cls

    def fit(self, train: Features, head: nn.Linear | None = None) -> Detector:
        """Estimate what the detector needs from ID training data; detectors with nothing to fit keep this."""
        return self

    @abstractmethod
    def score(self, data: Features) -> Tensor:
        """One OOD score per example, shape N; higher = more OOD."""

    @classmethod
    def hparam_grid(cls, train: Features | None = None) -> HparamGrid:
        """Candidate values for validation-set tuning (OpenOOD v1.5's `postprocessor_sweep`).

        Given the training data, candidates that cannot apply to it (e.g. more neighbours than training
        points) are dropped. Detectors without hyperparameters return an empty grid.
        """
        return {}

    def _require_features(self, data: Features) -> Tensor:
        if data.features is None:
            raise ValueError(
                f"OOD detector {self.name!r} scores penultimate features, but this backbone provides none "
                "(Features.features is None); use a logit-based detector such as 'energy' or 'msp'."
            )
        return data.features

    def _require_head(self, head: nn.Linear | None) -> nn.Linear:
        if head is None:
            raise ValueError(
                f"OOD detector {self.name!r} recomputes logits with the classifier's last linear layer; "
                "pass it as fit(train, head=backbone.head)."
            )
        return head

    def _fitted(self, state: State | None) -> State:
        if state is None:
            raise RuntimeError(
                f"OOD detector {self.name!r} is not fitted; call fit(train_features) before score()."
            )
        return state


class NetworkDetector(Detector):
    """A detector that must run its own forward/backward passes, so cached features are not enough."""

    needs_network = True

    @abstractmethod
    def score_inputs(self, model: Backbone, x: Tensor) -> Tensor:
        """OOD scores (higher = more OOD) for a batch of inputs `x`, running `model` (features, then head)."""

    def score(self, data: Features) -> Tensor:
        raise TypeError(
            f"OOD detector {self.name!r} perturbs inputs, so it cannot score cached features; "
            "call score_inputs(model, x) on batches of inputs instead."
        )


def build(name: str, **hparams: Any) -> Detector:
    """The detector registered as `name`, built with `hparams`; a wrong name or hparam lists valid ones."""
    if name not in DETECTORS:
        raise ValueError(f"Unknown OOD detector {name!r}; valid names: {', '.join(sorted(DETECTORS))}.")
    cls = DETECTORS[name]
    allowed = list(inspect.signature(cls).parameters)
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        raise ValueError(
            f"OOD detector {name!r} has no hyperparameter {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}."
        )
    return cls(**hparams)
