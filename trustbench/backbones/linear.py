"""Multinomial logistic regression: a linear map from the flattened input to the logits."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from torch import nn

from trustbench.backbones.base import Backbone


class Linear(Backbone):
    """Logits = W·flatten(x) + b, the linear model fairness and counterfactual papers start from.

    There is no hidden representation, so `feature_dim` is None and `features` refuses to run; the
    whole model is `head`, which keeps its weights where methods that read a last layer expect them.

    Dropout(p) on the flattened input is the only place left for it: Gal & Ghahramani (ICML 2016) drop
    the input of every weight layer, and here the head is the only one. An identity at the default p=0;
    with p>0, MC dropout samples which input features the model sees.
    """

    input_kind: ClassVar[Literal["image", "vector"]] = "vector"
    # Set on the class, not the instance, so config checks can refuse feature methods before building.
    feature_dim = None

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(math.prod(input_shape), num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "The linear backbone has no feature layer (feature_dim is None): it maps inputs straight to "
            "logits. Choose a backbone with features, such as mlp, for methods that need them."
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(x.flatten(1)))
