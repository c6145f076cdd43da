"""The adversarial suite's settings (``data.adversarial``), checked before any training."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from trustbench.errors import ConfigError


@dataclass(frozen=True)
class AdversarialSettings:
    """``data.adversarial``: what is attacked, how hard, and the checks' settings."""

    points: int = 200  # test points attacked (a seeded choice)
    eps_linf: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3)  # model-input units: pixels on MNIST
    eps_l2: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 3.0)
    steps: int = 20  # PGD steps of 2.5 ε / steps
    restarts: int = 1
    apgd_steps: int = 50
    eot_samples: int = 8  # gradient draws per step when the prediction is stochastic
    large_eps: float = 1.0  # ℓ∞ ε at which robust accuracy must be 0 (1: the whole [0, 1] pixel range)
    check_eps: float = 0.1  # ℓ∞ ε of the "more effort does not help" check
    check_factor: int = 2  # its steps and restarts, as multiples of the configured ones
    tolerance: float = 0.02  # the largest drop of robust accuracy that check lets pass

    @classmethod
    def from_config(cls, settings: Any) -> AdversarialSettings:
        """The settings a config block gives (None: all defaults); an unknown key is one line."""
        if settings is not None and not isinstance(settings, Mapping):
            raise ConfigError(f"data.adversarial must be a block of settings, got {settings!r}")
        given = dict(settings or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ConfigError(
                f"data.adversarial has no key {', '.join(unknown)}; its keys are {', '.join(sorted(known))}"
            )
        for key in ("eps_linf", "eps_l2"):
            if key in given:
                given[key] = tuple(float(eps) for eps in given[key])
        chosen = cls(**given)
        if chosen.points < 1 or chosen.steps < 1 or chosen.restarts < 1 or chosen.check_factor < 1:
            raise ConfigError("data.adversarial: points, steps, restarts and check_factor must be >= 1")
        return chosen
