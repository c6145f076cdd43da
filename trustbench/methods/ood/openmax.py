"""OpenMax (Bendale & Boult, "Towards Open Set Deep Networks", CVPR 2016), post-hoc on the logits.

Fit, on the training split: the mean activation vector (MAV) μ_c of each class c is the mean logit vector
of the training inputs of class c that the network classifies correctly; the Euclidean distances of those
inputs to μ_c are collected, and a Weibull distribution is fitted (maximum likelihood, scipy's
``weibull_min`` with location 0) to the `tail_size` largest of them (all of them when fewer, as OpenOOD's
slicing does): the extreme-value model of how far a correct member of class c lies from its mean.

Score an input with logit vector v: rank the classes by v; the top `alpha` get weights
ω = (α + 1 − r) / α for rank r = 1..α (1, (α−1)/α, ..., 1/α), every other class 0. With w_c the fitted
Weibull CDF at ‖v − μ_c‖, the recalibrated logits are v̂_c = v_c (1 − ω_c w_c) and the unknown class gets
v̂_0 = Σ_c (v_c − v̂_c). The score is the unknown class's probability softmax(v̂_0, v̂_1, ..., v̂_K)_0,
higher = more OOD.

Departures from the paper's and OpenOOD's code (``openmax_postprocessor.py``, libMR):

- libMR's ``FitHigh`` shifts the tail by a constant (10000 minus its smallest value) before fitting, a
  numerical device of its C++ fitter; here scipy fits the distances themselves with location 0, so a
  distance of 0 has probability 0 of being an outlier.
- Euclidean distance on the logits, as OpenOOD (the paper's code uses Euclidean/200 + cosine); the default
  tail size 20 and α = 3 are OpenOOD's (capped at the number of classes).
- The softmax is computed with log-sum-exp, so large logits do not overflow (OpenOOD exponentiates
  directly).
"""

from __future__ import annotations

import torch
from scipy.stats import weibull_min
from torch import Tensor, nn

from trustbench.methods.ood.detector import Detector, Features


def rank_weights(logits: Tensor, alpha: int) -> Tensor:
    """N×K weights ω: (α + 1 − r) / α for each row's r-th largest logit, r = 1..α, else 0."""
    alpha = min(alpha, logits.shape[1])
    top = logits.topk(alpha, dim=1).indices
    steps = (alpha - torch.arange(alpha, dtype=torch.float64)) / alpha
    return torch.zeros(logits.shape, dtype=torch.float64).scatter_(1, top, steps.expand(len(logits), -1))


class OpenMax(Detector):
    """The OpenMax layer's unknown-class probability (higher = more OOD); fitted on training logits."""

    name = "openmax"

    def __init__(self, tail_size: int = 20, alpha: int = 3) -> None:
        if tail_size < 2 or alpha < 1:
            raise ValueError(f"openmax needs tail_size >= 2 and alpha >= 1, got {tail_size} and {alpha}")
        self.tail_size, self.alpha = tail_size, alpha
        self._means: Tensor | None = None
        self._weibull: Tensor | None = None  # K×2: shape and scale of each class's Weibull

    def fit(self, train: Features, head: nn.Linear | None = None) -> OpenMax:
        if train.labels is None:
            raise ValueError(
                "OOD detector 'openmax' fits one Weibull per class; training labels are required."
            )
        logits = train.logits.double()
        correct = logits.argmax(dim=1) == train.labels
        means, weibull = [], []
        for label in range(logits.shape[1]):
            members = logits[correct & (train.labels == label)]
            if len(members) < 2:
                raise ValueError(
                    f"openmax: class {label} has {len(members)} correctly classified training inputs; a "
                    "Weibull fit needs at least 2 (train the classifier longer)"
                )
            mean = members.mean(dim=0)
            tail = (members - mean).norm(dim=1).sort().values[-self.tail_size :]
            shape, _, scale = weibull_min.fit(tail.numpy(), floc=0.0)
            means.append(mean)
            weibull.append((shape, scale))
        self._means = torch.stack(means)
        self._weibull = torch.tensor(weibull, dtype=torch.float64)
        return self

    def score(self, data: Features) -> Tensor:
        means, weibull = self._fitted(self._means), self._fitted(self._weibull)
        logits = data.logits.double()
        distances = torch.cdist(logits, means)
        outlier = torch.from_numpy(
            weibull_min.cdf(distances.numpy(), weibull[:, 0].numpy(), loc=0.0, scale=weibull[:, 1].numpy())
        )
        revised = logits * (1 - rank_weights(logits, self.alpha) * outlier)
        unknown = (logits - revised).sum(dim=1, keepdim=True)
        return torch.cat([unknown, revised], dim=1).softmax(dim=1)[:, 0].to(data.logits.dtype)
