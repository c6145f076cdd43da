"""Monte Carlo dropout: dropout left on at test time and T stochastic passes averaged.

Source: Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing Model Uncertainty in Deep
Learning", ICML 2016. Training is plain ERM with the backbone's dropout; at prediction time only the dropout
layers sample (batch norm keeps its running statistics), giving T predictive distributions p_t whose mean
p̄ is the prediction. `method=mc_dropout` sets `backbone.net.dropout=0.1` on whichever backbone is composed
(configs/method/base/backbone_dropout.yaml; uncertainty-baselines' rate), and each backbone's docstring says
where its dropout sits: before the head or between hidden layers, as Gal & Ghahramani place it.

The scores over sampled predictive distributions live here and deep ensembles reuse them, in nats with
higher = more uncertain:

- ``entropy``: H[p̄] = −Σ_k p̄_k ln p̄_k, the total predictive uncertainty;
- ``mutual_information``: H[p̄] − (1/T) Σ_t H[p_t] ≥ 0, the part due to disagreement between samples
  (BALD: Houlsby et al. 2011; Gal, Islam & Ghahramani, ICML 2017).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from trustbench.backbones.base import Backbone
from trustbench.methods.base import OptimizerFactory, Prediction, SchedulerFactory
from trustbench.methods.erm import ERM
from trustbench.metrics.ood import entropy_score

DROPOUT_LAYERS = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
SAMPLE_SCORES = ("entropy", "mutual_information")


def require_score(method: str, score: str, allowed: tuple[str, ...]) -> None:
    """Raise a one-line ValueError unless `score` is one of the `allowed` names."""
    if score not in allowed:
        raise ValueError(f"{method} score must be one of {', '.join(allowed)}; got {score!r}.")


def mutual_information(sample_probs: torch.Tensor) -> torch.Tensor:
    """H[p̄] − mean_t H[p_t] in nats (float64) for predictive distributions shaped T × N × K."""
    sample_probs = sample_probs.to(torch.float64)
    mean_sample_entropy = entropy_score(sample_probs.flatten(0, 1)).view(sample_probs.shape[:2]).mean(dim=0)
    return entropy_score(sample_probs.mean(dim=0)) - mean_sample_entropy


def sample_prediction(sample_probs: torch.Tensor, score: str) -> Prediction:
    """The mean of T × N × K sampled distributions, scored by ``entropy`` or ``mutual_information``."""
    mean_probs = sample_probs.mean(dim=0)
    uncertainty = entropy_score(mean_probs) if score == "entropy" else mutual_information(sample_probs)
    return Prediction(probs=mean_probs, uncertainty=uncertainty.to(mean_probs.dtype))


@contextmanager
def dropout_sampling(model: nn.Module) -> Iterator[None]:
    """Put only the dropout layers of `model` in training mode, and restore their modes afterwards."""
    dropouts = [module for module in model.modules() if isinstance(module, DROPOUT_LAYERS)]
    modes = [module.training for module in dropouts]
    for module in dropouts:
        module.train()
    try:
        yield
    finally:
        for module, mode in zip(dropouts, modes, strict=True):
            module.train(mode)


class MCDropout(ERM):
    """ERM training; predictions average `num_samples` dropout passes (module docstring).

    `score` picks the uncertainty: ``entropy`` (default) or ``mutual_information``.
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_samples: int = 20,
        score: str = "entropy",
    ) -> None:
        super().__init__(backbone, num_classes, optimizer, scheduler)
        if not any(isinstance(module, DROPOUT_LAYERS) and module.p > 0 for module in backbone.modules()):
            raise ValueError(
                f"MC dropout needs dropout layers with p > 0, but backbone {type(backbone).__name__} "
                "has none; set backbone.net.dropout=0.1 (or another p in (0, 1))."
            )
        if num_samples < 1:
            raise ValueError(f"MC dropout num_samples must be >= 1; got {num_samples}.")
        require_score("MC dropout", score, SAMPLE_SCORES)
        self.num_samples = num_samples
        self.score = score

    def sample_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax outputs of `num_samples` passes with dropout on and batch norm untouched: T × N × K."""
        with dropout_sampling(self.backbone):
            return torch.stack([self.backbone(x).softmax(dim=1) for _ in range(self.num_samples)])

    def predict(self, x: torch.Tensor) -> Prediction:
        return sample_prediction(self.sample_probs(x), self.score)
