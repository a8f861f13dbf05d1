"""``[hooks]``: which VICIdial URL hooks to rescue, and when one counts as never completed.

    [hooks]
    rescue = ["dispo", "start"]          # re-send these when VICIdial's attempt failed
    timeouts_s = { dispo = 600 }         # never completed after this long (binlog time)

Every type is watched with no configuration. Keys are ``url_type`` as
``vicidial_url_log`` stores it (:data:`cdc.hooks.types.HOOK_TYPES`); only ``notify``
types may be rescued. ``apinewlead`` is not set here: ``delivery.mode`` decides its
rescue and ``delivery.vicidial_attempt_timeout_s`` its timeout. Env:
``VICIDIAL_CDC_HOOKS_RESCUE="dispo,start"`` replaces ``rescue``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from .types import APINEWLEAD, HOOK_TYPES, MULTI_ALIASES, Kind

ENV_RESCUE = "VICIDIAL_CDC_HOOKS_RESCUE"
_KEYS = frozenset({"rescue", "timeouts_s"})


@dataclass(frozen=True, slots=True)
class HooksConfig:
    #: ``url_type`` values re-sent when VICIdial's attempt failed or never completed.
    rescue: frozenset[str] = frozenset()
    #: Never-completed timeouts by ``url_type``, over the defaults of :mod:`cdc.hooks.types`.
    timeouts_s: Mapping[str, float] = field(default_factory=dict)


def load_hooks(table: Any, env: Mapping[str, str]) -> HooksConfig:
    """The ``[hooks]`` table, validated; a :class:`ConfigError` names the key and the fix."""
    if not isinstance(table, dict):
        raise ConfigError("[hooks] must be a table")
    unknown = set(table) - _KEYS
    if unknown:
        raise ConfigError(f"unknown key(s) in [hooks]: {', '.join(sorted(unknown))}")
    rescue_raw: Any = table.get("rescue", [])
    if ENV_RESCUE in env:
        rescue_raw = [part.strip() for part in env[ENV_RESCUE].split(",") if part.strip()]
    if not isinstance(rescue_raw, list) or not all(isinstance(v, str) for v in rescue_raw):
        raise ConfigError('hooks.rescue must be a list of url_type names, such as ["dispo"]')
    for url_type in rescue_raw:
        _check_type(url_type, "hooks.rescue")
        kind = HOOK_TYPES[url_type].kind
        if kind is not Kind.NOTIFY:
            raise ConfigError(
                f"hooks.rescue: {url_type!r} is a {kind.value} ({HOOK_TYPES[url_type].description}):"
                " re-sending it later has no use, so it is only watched"
            )
    timeouts_raw: Any = table.get("timeouts_s", {})
    if not isinstance(timeouts_raw, dict):
        raise ConfigError("hooks.timeouts_s must be a table of url_type = seconds")
    timeouts: dict[str, float] = {}
    for url_type, value in timeouts_raw.items():
        _check_type(url_type, "hooks.timeouts_s")
        if HOOK_TYPES[url_type].timeout_s <= 0:
            raise ConfigError(
                f"hooks.timeouts_s.{url_type}: {url_type} rows get no UPDATE"
                f" ({HOOK_TYPES[url_type].description}): there is nothing to wait for"
            )
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigError(f"hooks.timeouts_s.{url_type} must be a number of seconds > 0, got {value!r}")
        timeouts[url_type] = float(value)
    return HooksConfig(frozenset(rescue_raw), timeouts)


def _check_type(url_type: str, where: str) -> None:
    if url_type == APINEWLEAD:
        raise ConfigError(
            f"{where}: apinewlead follows delivery.mode (watch/auto re-send its failures) and"
            " delivery.vicidial_attempt_timeout_s: remove it here"
        )
    if url_type in MULTI_ALIASES:
        raise ConfigError(
            f"{where}: {url_type!r} is the vicidial_url_multi name; vicidial_url_log stores"
            f" {MULTI_ALIASES[url_type]!r}: write that"
        )
    if url_type not in HOOK_TYPES:
        known = ", ".join(t for t in HOOK_TYPES if t != APINEWLEAD)
        raise ConfigError(f"{where}: unknown url_type {url_type!r} (known: {known})")
