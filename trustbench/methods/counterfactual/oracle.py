"""The oracle that judges counterfactuals: a classifier of another architecture trained on all the data.

Rodriguez et al., "Beyond Trivial Counterfactual Explanations with Diverse Valuable Explanations" (DiVE),
ICCV 2021, score a counterfactual by whether an independent oracle agrees with the explained model: a
counterfactual that flips the model but not the oracle changed something the model alone relies on. The
oracle here is an MLP on the flattened inputs (a different architecture from the LeNet / conv backbones
images are explained with), trained on every labelled row of the dataset (training, validation and test
splits), seeded, and kept in the model store beside the explainers' generative models, so every explainer
of a sweep is judged by the same oracle and it is trained once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from trustbench.config_blocks import checked_keys
from trustbench.data.loaders import seeded_generator
from trustbench.fingerprint import fingerprint_config, fingerprint_tensors
from trustbench.progress import progress
from trustbench.results.model_store import load_weights, save_weights

_KEYED_ROWS = 1024
"""Rows digested into the cache key (evenly spaced), as for the generative models."""


@dataclass(frozen=True)
class OracleConfig:
    """The oracle MLP's width and training recipe; every field keys the cache."""

    hidden: int = 256
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> OracleConfig:
        """The config of ``method.explain.oracle``; unknown keys list the valid ones."""
        return cls(**checked_keys(cls, values, "method.explain.oracle"))


def oracle_network(input_shape: tuple[int, ...], num_classes: int, hidden: int) -> nn.Module:
    """Flatten → two ReLU layers of width `hidden` → logits."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


def trained_oracle(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    config: OracleConfig,
    cache_dir: Path,
    dataset_name: str,
    seed: int,
) -> nn.Module:
    """The oracle of `config` on all labelled rows (`x`, `y`): loaded from `cache_dir` or trained there.

    The key covers the config, the dataset, the rows (their number and a digest of evenly spaced ones) and
    the seed. Epoch `e` shuffles with ``seeded_generator(seed, e)``. Returned in eval mode, frozen.
    """
    key = fingerprint_config(
        {
            "kind": "oracle",
            "config": dataclasses.asdict(config),
            "dataset": dataset_name,
            "rows": len(x),
            "data": fingerprint_tensors(
                [("x", x[:: max(1, len(x) // _KEYED_ROWS)]), ("y", y[:: max(1, len(y) // _KEYED_ROWS)])]
            ),
            "seed": seed,
        }
    )
    path = Path(cache_dir) / f"{dataset_name}-oracle-{key}.pt"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        oracle = oracle_network(tuple(x.shape[1:]), num_classes, config.hidden).to(x.device)
    if path.exists():
        load_weights(oracle, path)
    else:
        _fit(oracle, x, y, config, seed)
        save_weights(oracle, path)
    return oracle.eval().requires_grad_(False)


def _fit(oracle: nn.Module, x: Tensor, y: Tensor, config: OracleConfig, seed: int) -> None:
    optimizer = torch.optim.Adam(oracle.parameters(), lr=config.lr)
    oracle.train()
    for epoch in progress(range(config.epochs), "training the oracle"):
        order = torch.randperm(len(x), generator=seeded_generator(seed, epoch)).to(x.device)
        for batch in order.split(config.batch_size):
            optimizer.zero_grad()
            F.cross_entropy(oracle(x[batch]), y[batch]).backward()
            optimizer.step()
