"""Settings blocks of a config read into frozen dataclasses: a key the dataclass lacks is one line that
names the valid keys, before any work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from trustbench.errors import ConfigError


def checked_keys(settings_class: type, given: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """`given` (None: empty) as a plain dict, after checking that every key is a field of `settings_class`;
    `where` names the block in the error (e.g. ``data.supervisors``)."""
    if given is not None and not isinstance(given, Mapping):
        raise ConfigError(f"{where} must be a block of settings, got {given!r}")
    values = dict(given or {})
    known = {field.name for field in fields(settings_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where} has no key {', '.join(unknown)}; its keys are {', '.join(sorted(known))}")
    return values
