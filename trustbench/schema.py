"""Dataclass schemas of the common config groups: the type and range of each value a user often sets.

Hydra composes YAML without types, so `seed=abc` or `data.batch_size=-3` used to travel until torch or
Lightning broke on them with a traceback. :func:`validate` checks the keys declared here right after
composition and raises one ConfigError line naming the key, the value and what is allowed. We check a
schema per group instead of merging Hydra structured configs into the whole tree because the groups carry
many method-specific keys a closed structured config would have to list; the keys here are the shared ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin, get_type_hints

from omegaconf import DictConfig, OmegaConf

from trustbench.errors import ConfigError


def _at_least(minimum: float) -> dict[str, float]:
    return {"min": minimum}


@dataclass
class RootSchema:
    """Top-level keys of configs/config.yaml."""

    seed: int = field(metadata=_at_least(0))
    resume: Literal["auto"] | bool
    threads: int = field(metadata=_at_least(1))
    plots: bool


@dataclass
class DataSchema:
    """Keys every configs/data/*.yaml shares; `kind` and `num_classes` let checks run before loading."""

    batch_size: int = field(metadata=_at_least(1))
    val_size: int = field(metadata=_at_least(0))
    kind: Literal["image", "tabular", None]
    task: Literal["classification", "regression", None]
    num_classes: int | None = field(metadata=_at_least(2))


@dataclass
class TrainerSchema:
    """Lightning Trainer arguments the configs/trainer/*.yaml files set."""

    max_epochs: int = field(metadata=_at_least(1))
    log_every_n_steps: int = field(metadata=_at_least(1))
    gradient_clip_val: float | None = field(metadata=_at_least(0))


@dataclass
class BackboneNetSchema:
    """Keys the image and tabular backbones share (backbone.net): the dropout rate MC dropout samples."""

    dropout: float | None = field(metadata={"min": 0, "max": 1, "max_exclusive": True})


@dataclass
class OptimizerSchema:
    """The optimiser every trained method configures (method.optimizer)."""

    lr: float = field(metadata={"min": 0, "exclusive": True})
    weight_decay: float = field(metadata=_at_least(0))


_ABSENT = object()
SCHEMAS: dict[str, type] = {
    "": RootSchema,
    "data": DataSchema,
    "trainer": TrainerSchema,
    "backbone.net": BackboneNetSchema,
    "method.optimizer": OptimizerSchema,
}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value of a schema key with the wrong type or out of range."""
    for prefix, schema in SCHEMAS.items():
        hints = get_type_hints(schema)
        for spec in dataclasses.fields(schema):
            key = f"{prefix}.{spec.name}" if prefix else spec.name
            if OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False) is _ABSENT:
                continue
            value = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
            problem = _problem(value, hints[spec.name], spec.metadata)
            if problem:
                raise ConfigError(f"{key}={_shown(value)} is not allowed: {key} {problem}")


def _problem(value: Any, hint: Any, limits: Any) -> str | None:
    """What is wrong with `value` for the type `hint` and range `limits`, or None when it is fine."""
    allowed = _alternatives(hint)
    if not any(_matches(value, kind) for kind in allowed):
        return f"takes {' or '.join(_describe(kind) for kind in allowed)}"
    if value is None or isinstance(value, (str, bool)):
        return None
    minimum, maximum = limits.get("min"), limits.get("max")
    too_low = minimum is not None and (value < minimum or (limits.get("exclusive") and value == minimum))
    too_high = maximum is not None and (value > maximum or (limits.get("max_exclusive") and value == maximum))
    if not (too_low or too_high):
        return None
    bounds = []
    if minimum is not None:
        bounds.append(f"> {minimum}" if limits.get("exclusive") else f">= {minimum}")
    if maximum is not None:
        bounds.append(f"< {maximum}" if limits.get("max_exclusive") else f"<= {maximum}")
    return f"takes {_describe(allowed[0])} {' and '.join(bounds)}"


def _alternatives(hint: Any) -> list[Any]:
    """The accepted kinds of a hint: a Union's members, a Literal's values (each as a Literal)."""
    if get_origin(hint) is Literal:
        return [Literal[value] for value in get_args(hint)]
    if get_args(hint):  # X | Y
        return [kind for member in get_args(hint) for kind in _alternatives(member)]
    return [hint]


def _matches(value: Any, kind: Any) -> bool:
    if get_origin(kind) is Literal:
        return value == get_args(kind)[0] and type(value) is type(get_args(kind)[0])
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _shown(value: Any) -> str:
    """`value` as written in YAML / on the command line (null, true), strings quoted."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value) if isinstance(value, str) else str(value)


def _describe(kind: Any) -> str:
    if get_origin(kind) is Literal:
        return _shown(get_args(kind)[0])
    names = {int: "an integer", float: "a number", bool: "true/false", type(None): "null"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))
