"""The stress suite's settings, read from the data config's ``stress:`` block and checked in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from trustbench.errors import ConfigError

TRANSFORMS = ("tilt", "quantile", "quantile_smooth")
"""tilt: entropic projection (reweighting); quantile: exact quantile-constrained transport; quantile_smooth:
its isotonic-polynomial variant."""


IMAGE_DEFAULTS = {"features": ("pixels",), "transforms": ("tilt",)}


@dataclass(frozen=True)
class StressSettings:
    """What to stress and how; every field is a key of ``data.stress`` (see the README, "Stress testing")."""

    features: tuple[str, ...] = ("all",)  # tabular: names or feature=category, or all; images: pixels
    levels: int = 21  # τ grid from −1 to 1, odd so that τ = 0 (unstressed) is on it
    alpha: float = 0.05  # τ = ±1 asks for the α and 1 − α quantiles
    transforms: tuple[str, ...] = TRANSFORMS
    quantile_level: float = 0.5  # the quantile the transports constrain (0.5: the median)
    degree: int = 12  # of quantile_smooth's polynomial
    bootstrap: int = 20  # resamples for the 5-95 % bands; 0 for none
    key_levels: tuple[float, ...] = (-1.0, 1.0)  # τ values reported as metric keys
    key_metrics: tuple[str, ...] | None = None  # metrics reported as keys; None: all but per-class ones
    patch: int = 1  # images: side of the square patch stressed as one feature (1: every pixel)
    seed: int = 0  # bootstrap resamples and the random tie-breaking of ranks

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None, seed: int, images: bool = False) -> StressSettings:
        """Settings from ``data.stress`` (absent keys take the defaults above; on ``images``, features
        [pixels] and transforms [tilt]); one line on a bad value."""
        given = (IMAGE_DEFAULTS if images else {}) | dict(block or {})
        known = [f.name for f in fields(cls) if f.name != "seed"]
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ConfigError(
                f"data.stress has unknown key {', '.join(unknown)}; known keys: {', '.join(known)}"
            )
        for key in ("features", "transforms", "key_levels", "key_metrics"):
            if isinstance(given.get(key), str):
                given[key] = [given[key]]
            if given.get(key) is not None:
                given[key] = tuple(given[key])
        settings = cls(**given, seed=seed)
        settings.check()
        if images and (settings.transforms != ("tilt",) or settings.features != ("pixels",)):
            raise ConfigError(
                "on images the stress suite tilts every pixel (or patch) and moves no image; set "
                "data.stress.transforms=[tilt] and data.stress.features=[pixels] (got "
                f"{list(settings.transforms)} and {list(settings.features)})"
            )
        return settings

    def check(self) -> None:
        """Raise ConfigError naming the first setting that cannot work and what is allowed."""
        problems = {
            "levels": (
                _is_int(self.levels) and self.levels >= 3 and self.levels % 2 == 1,
                "an odd integer >= 3",
            ),
            "alpha": (_is_number(self.alpha) and 0 < self.alpha < 0.5, "a number in (0, 0.5), e.g. 0.05"),
            "quantile_level": (
                _is_number(self.quantile_level) and 0 < self.quantile_level < 1,
                "a number in (0, 1), e.g. 0.5 for the median",
            ),
            "degree": (_is_int(self.degree) and self.degree >= 1, "a positive integer, e.g. 12"),
            "bootstrap": (_is_int(self.bootstrap) and self.bootstrap >= 0, "an integer >= 0 (0: no bands)"),
            "patch": (_is_int(self.patch) and self.patch >= 1, "a positive integer (1: every pixel)"),
            "transforms": (
                bool(self.transforms) and set(self.transforms) <= set(TRANSFORMS),
                f"a non-empty list of {', '.join(TRANSFORMS)}",
            ),
            "features": (bool(self.features), "a non-empty list of feature names, or [all]"),
        }
        for key, (fine, allowed) in problems.items():
            if not fine:
                raise ConfigError(
                    f"data.stress.{key}={getattr(self, key)!r} is not allowed: it takes {allowed}"
                )
        grid = [round(-1 + 2 * i / (self.levels - 1), 9) for i in range(self.levels)]
        off_grid = [level for level in self.key_levels if round(float(level), 9) not in grid]
        if off_grid:
            raise ConfigError(
                f"data.stress.key_levels {off_grid} are not on the grid of {self.levels} levels "
                f"({', '.join(f'{g:g}' for g in grid)}); choose key levels from it or change "
                "data.stress.levels"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
