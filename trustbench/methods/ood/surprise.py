"""Surprise adequacy: how surprising a test input's activation trace is, given the training traces.

Sources: Kim, Feldt & Yoo, "Guiding Deep Learning System Testing using Surprise Adequacy", ICSE 2019
(LSA and DSA); Kim, Ju, Feldt & Yoo, "Reducing DNN Labelling Cost by Surprise Adequacy: An Industrial
Case Study for Autonomous Driving", ESEC/FSE 2020 (MDSA). The conventions are those of the supervisor
benchmark of Weiss, García Gómez & Tonella (``ambguess-src``, ``runner_surprise.py``), which this table
reproduces: every score is computed per *predicted* class, on training traces grouped by the network's
predictions (not by their labels), and higher = more surprising = more OOD.

- ``lsa``: −log f̂_c(a), f̂_c a Gaussian KDE (scipy's ``gaussian_kde``, Scott's bandwidth) on the training
  traces predicted as c, the test input's predicted class. Trace units whose variance within the class
  is below ``min_variance`` are dropped first: a constant unit makes the KDE's covariance singular
  (the reference keeps the 300 units of highest variance for the same reason; LeNet's 84 are all kept).
- ``dsa``: dist_a / dist_b, with x_a the training trace predicted as c nearest to a (dist_a = ‖a − x_a‖)
  and dist_b the distance from x_a to the nearest training trace predicted as another class. Like the
  reference, it uses a seeded third of the training traces.
- ``mdsa``: (a − μ_c)ᵀ Σ_c⁻¹ (a − μ_c), the squared Mahalanobis distance (scikit-learn's
  ``EmpiricalCovariance.mahalanobis``, which the reference calls, is squared) to the mean of class c's
  training traces under their own maximum-likelihood covariance (pseudo-inverted, as ``mahalanobis``).

Departure: the activation trace is the penultimate layer the feature cache holds, not a layer chosen per
architecture (the reference picks some hidden layers), so every detector reads one inference pass. A test
input predicted as a class no training trace was predicted as gets the largest finite float64, ranked
above every other (the OOD metrics refuse infinite scores).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from scipy.stats import gaussian_kde
from torch import Tensor, nn

from trustbench.methods.ood.detector import Detector, Features
from trustbench.methods.ood.mahalanobis import precision_matrix, squared_mahalanobis

DSA_SHARE = 3  # DSA keeps one training trace in this many (the reference's third)
UNSEEN_CLASS_SCORE = torch.finfo(torch.float64).max
_CHUNK = 1024  # test traces per block of pairwise distances


class _PerPredictedClass(Detector):
    """Fits one model per class the network predicts on the training split; scores each test trace with
    the model of its own predicted class."""

    needs_features = True

    def __init__(self) -> None:
        self._models: dict[int, Any] | None = None

    def fit(self, train: Features, head: nn.Linear | None = None) -> _PerPredictedClass:
        features = self._require_features(train).double()
        predicted = train.logits.argmax(dim=1)
        self._models = {int(c): self.fit_class(features[predicted == c]) for c in predicted.unique()}
        return self

    @abstractmethod
    def fit_class(self, traces: Tensor) -> Any:
        """What scoring a test trace of this predicted class needs."""

    @abstractmethod
    def score_class(self, model: Any, traces: Tensor) -> Tensor:
        """The surprise (float64) of test traces predicted as the model's class."""

    def score(self, data: Features) -> Tensor:
        models = self._fitted(self._models)
        features = self._require_features(data).double()
        predicted = data.logits.argmax(dim=1)
        scores = torch.full((len(features),), UNSEEN_CLASS_SCORE, dtype=torch.float64)
        for c in predicted.unique().tolist():
            if c in models:
                rows = predicted == c
                scores[rows] = self.score_class(models[c], features[rows])
        return scores


class LSA(_PerPredictedClass):
    """Likelihood-based surprise adequacy: −log KDE density of the trace in its predicted class."""

    name = "lsa"

    def __init__(self, min_variance: float = 1e-5) -> None:
        super().__init__()
        self.min_variance = min_variance

    def fit_class(self, traces: Tensor) -> tuple[Tensor, gaussian_kde | None]:
        kept = traces.var(dim=0) >= self.min_variance
        if len(traces) <= int(kept.sum()):
            raise ValueError(
                f"LSA's KDE needs more training traces of a class ({len(traces)}) than varying trace units "
                f"({int(kept.sum())}); train on more data or raise min_variance"
            )
        return kept, gaussian_kde(traces[:, kept].numpy().T)

    def score_class(self, model: tuple[Tensor, gaussian_kde], traces: Tensor) -> Tensor:
        kept, kde = model
        return -torch.from_numpy(np.asarray(kde.logpdf(traces[:, kept].numpy().T), dtype=np.float64))


class MDSA(_PerPredictedClass):
    """Mahalanobis-distance surprise adequacy: squared distance to the predicted class's trace Gaussian."""

    name = "mdsa"

    def fit_class(self, traces: Tensor) -> tuple[Tensor, Tensor]:
        mean = traces.mean(dim=0, keepdim=True)
        return mean, precision_matrix(traces - mean)

    def score_class(self, model: tuple[Tensor, Tensor], traces: Tensor) -> Tensor:
        mean, precision = model
        return squared_mahalanobis(traces, mean, precision).squeeze(1)


class DSA(Detector):
    """Distance-based surprise adequacy: distance to the nearest same-class training trace over that
    trace's distance to the nearest trace of another class (both by predicted class)."""

    name = "dsa"
    needs_features = True

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._train: tuple[Tensor, Tensor] | None = None

    def fit(self, train: Features, head: nn.Linear | None = None) -> DSA:
        features = self._require_features(train).double()
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(self.seed))
        kept = order[: max(len(features) // DSA_SHARE, 1)]
        self._train = (features[kept], train.logits[kept].argmax(dim=1))
        return self

    def score(self, data: Features) -> Tensor:
        train, train_class = self._fitted(self._train)
        features = self._require_features(data).double()
        predicted = data.logits.argmax(dim=1)
        scores = []
        for start in range(0, len(features), _CHUNK):
            block, block_class = features[start : start + _CHUNK], predicted[start : start + _CHUNK]
            same = block_class[:, None] == train_class[None, :]
            distances = torch.cdist(block, train).masked_fill(~same, float("inf"))
            dist_a, nearest = distances.min(dim=1)
            anchors = train[nearest]
            other = torch.cdist(anchors, train).masked_fill(same, float("inf"))
            scores.append(
                (dist_a / other.min(dim=1).values).nan_to_num(UNSEEN_CLASS_SCORE, UNSEEN_CLASS_SCORE)
            )
        return torch.cat(scores) if scores else torch.zeros(0, dtype=torch.float64)
