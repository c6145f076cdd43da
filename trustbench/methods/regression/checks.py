"""Regression settings checked with the config, before any data is read or model built: one line each.

The modules that use these settings check them too (for callers of the Python API) against the same
tuples of :mod:`trustbench.methods.regression.choices`, a module free of torch, so a wrong override stops
`trustbench run` in under a second instead of after loading data, in a traceback.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from trustbench.errors import ConfigError
from trustbench.methods.regression.choices import (
    CAR_SCORES,
    CAR_SPACINGS,
    CONFORMAL_SCORES,
    SIDE_LEARNER_LOSSES,
)


def check_regression_settings(cfg: DictConfig) -> None:
    """Raise ConfigError for the first regression data or method setting outside its allowed values."""
    data, method = cfg.data, cfg.method
    _require(
        data, "split", lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (the UCI splits: 0..19)"
    )
    _require(
        data, "max_rows", lambda v: v is None or (isinstance(v, int) and v >= 10), "null or an integer >= 10"
    )
    _require(data, "rotation", lambda v: isinstance(v, (int, float)) and 0 < v <= 180, "degrees in (0, 180]")
    _require(data, "train_rows", lambda v: isinstance(v, int) and v >= 2, "an integer >= 2")
    _require(data, "test_rows", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
    module = method.module
    if str(module.get("_target_", "")).endswith(".ClassificationAsRegression"):
        _require(module, "bins", lambda v: isinstance(v, int) and v >= 2, "an integer >= 2", "method.module")
        _require(module, "spacing", lambda v: v in CAR_SPACINGS, " or ".join(CAR_SPACINGS), "method.module")
        _require(module, "score", lambda v: v in CAR_SCORES, " or ".join(CAR_SCORES), "method.module")
    _require(
        module,
        "beta",
        lambda v: isinstance(v, (int, float)) and 0 <= v <= 1,
        "a number in [0, 1]",
        "method.module",
    )
    if method.get("conformal"):
        allowed = " or ".join(CONFORMAL_SCORES)
        _require(method.conformal, "score", lambda v: v in CONFORMAL_SCORES, allowed, "method.conformal")
    if method.get("side_learner"):
        side = method.side_learner
        _require(
            side,
            "loss",
            lambda v: v in SIDE_LEARNER_LOSSES,
            " or ".join(SIDE_LEARNER_LOSSES),
            "method.side_learner",
        )
        for key in ("hidden", "epochs", "batch_size"):
            _require(
                side, key, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1", "method.side_learner"
            )


def _require(node: DictConfig, key: str, ok: Any, allowed: str, prefix: str = "data") -> None:
    if key in node and not ok(node[key]):
        raise ConfigError(f"{prefix}.{key}={node[key]!r} is not allowed: {prefix}.{key} takes {allowed}")
