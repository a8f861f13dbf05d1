"""Reading the configuration: the TOML file, then ``VICIDIAL_CDC_<SECTION>_<KEY>``, then secret files.

:func:`load` is the one way every command gets its :class:`~cdc.config.Config`: it
builds each section (:mod:`cdc.config.values`), adds the named endpoints
(:mod:`cdc.config.fanout`), reads the MySQL password, and validates
(:mod:`cdc.config.validation`). Keys that moved are refused with the name they have now.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..hooks.config import load_hooks
from ..vicidial import DISABLED
from .fanout import with_endpoints
from .sections import (
    Config,
    DeliveryConfig,
    EndpointLimits,
    HttpConfig,
    LogConfig,
    MysqlConfig,
    ReaderConfig,
    RetryPolicy,
    Secret,
    StateConfig,
    UrlsConfig,
)
from .validation import tls_warnings, validate
from .values import ENV_PREFIX, build_section, env_key

__all__ = ["SECTIONS", "load"]

log = logging.getLogger(__name__)

#: The top-level tables with their dataclass (``[endpoints.*]`` and ``[fanout]`` aside).
SECTIONS: dict[str, type[Any]] = {
    "mysql": MysqlConfig,
    "reader": ReaderConfig,
    "state": StateConfig,
    "http": HttpConfig,
    "delivery": DeliveryConfig,
    "urls": UrlsConfig,
    "log": LogConfig,
}

#: ``[delivery]`` keys of earlier releases -> their key in ``[delivery.retry]``.
_MOVED_TO_RETRY = {
    "retry_base_s": "base_s",
    "retry_factor": "factor",
    "retry_cap_s": "cap_s",
    "max_attempts": "max_attempts",
    "max_age_s": "max_age_s",
    "dead_on_4xx": "dead_on_4xx",
}


def load(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (optional), apply env overrides, resolve secrets, validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = set(raw) - set(SECTIONS) - {"endpoints", "fanout", "hooks"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table")
        if name == "urls":
            sections[name] = _load_urls(table)
        elif name == "delivery":
            sections[name] = _load_delivery(table, env)
        else:
            sections[name] = build_section(cls, table, name, env)
    if sections["state"].busy_limit_s < 0:
        raise ConfigError(f"state.busy_limit_s must be >= 0, got {sections['state'].busy_limit_s!r}")
    config = Config(**sections, hooks=load_hooks(raw.get("hooks", {}), env))
    config = with_endpoints(config, raw.get("endpoints", {}), raw.get("fanout"), env)
    config = _with_password(config, env)
    config = _with_admin_token(config, env)
    validate(config)
    for warning in tls_warnings(config.mysql):
        log.warning("config.tls_warning %s", warning)
    return config


def _load_urls(table: Mapping[str, Any]) -> UrlsConfig:
    unknown = set(table) - {"system", "lists"}
    if unknown:
        raise ConfigError(f"unknown key(s) in [urls]: {', '.join(sorted(unknown))}")
    system = table.get("system")
    if system is not None and not isinstance(system, str):
        raise ConfigError("urls.system must be a string")
    lists_raw = table.get("lists", {})
    if not isinstance(lists_raw, dict):
        raise ConfigError("[urls.lists] must be a table of list_id = URL")
    lists: dict[int, str] = {}
    for key, value in lists_raw.items():
        if not str(key).isdigit():
            raise ConfigError(f"[urls.lists] key {key!r} is not a numeric list_id")
        if not isinstance(value, str):
            raise ConfigError(f"[urls.lists] {key} must be a string URL or {DISABLED!r}")
        lists[int(key)] = value
    return UrlsConfig(system=system, lists=lists)


def _load_delivery(table: Mapping[str, Any], env: Mapping[str, str]) -> DeliveryConfig:
    table = dict(table)
    _refuse_moved_retry_keys(table, env)
    endpoints_raw = table.pop("endpoints", {})
    retry_raw = table.pop("retry", {})
    for derived in ("endpoint_headers", "named_endpoints", "fanout"):
        if derived in table:
            raise ConfigError(
                f"delivery.{derived} is not a setting: write [endpoints.NAME] and [fanout] at the top level"
            )
    limit_keys = {f.name for f in dataclasses.fields(EndpointLimits)}
    defaults_raw = {k: table.pop(k) for k in list(table) if k in limit_keys}
    base = build_section(DeliveryConfig, table, "delivery", env)
    defaults = build_section(EndpointLimits, defaults_raw, "delivery", env)
    if not isinstance(retry_raw, dict):
        raise ConfigError("[delivery.retry] must be a table (base_s, factor, cap_s, max_attempts, ...)")
    retry: RetryPolicy = build_section(RetryPolicy, retry_raw, "delivery.retry", env)
    if not isinstance(endpoints_raw, dict):
        raise ConfigError("[delivery.endpoints] must be a table of tables")
    endpoints: dict[str, EndpointLimits] = {}
    for name, sub in endpoints_raw.items():
        if not isinstance(sub, dict):
            raise ConfigError(f"[delivery.endpoints.{name!r}] must be a table")
        merged = {**{f: getattr(defaults, f) for f in limit_keys}, **sub}
        endpoints[str(name)] = build_section(EndpointLimits, merged, f"delivery.endpoints.{name}", {})
    for lim in (defaults, *endpoints.values()):
        if lim.concurrency < 1 or lim.rate_per_s <= 0 or lim.burst < 1 or lim.timeout_s <= 0:
            raise ConfigError("delivery limits must be positive (concurrency, rate_per_s, burst, timeout_s)")
    result: DeliveryConfig = dataclasses.replace(base, defaults=defaults, endpoints=endpoints, retry=retry)
    return result


def _refuse_moved_retry_keys(table: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """A retry key where earlier releases had it (flat in ``[delivery]``): an error naming its new place.

    Ignoring it would silently bring back the default schedule on upgrade.
    """
    for old, new in _MOVED_TO_RETRY.items():
        if old in table:
            raise ConfigError(
                f"delivery.{old} is now delivery.retry.{new}: write {new} = ... under a "
                "[delivery.retry] table instead"
            )
        old_variable, new_variable = env_key("delivery", old), env_key("delivery.retry", new)
        if old_variable != new_variable and old_variable in env:
            raise ConfigError(
                f"{old_variable} is now {new_variable} (delivery.retry.{new}): rename the variable"
            )


def _with_password(config: Config, env: Mapping[str, str]) -> Config:
    mysql = config.mysql
    password = _secret_value(env, "MYSQL_PASSWORD", mysql.password_file, "mysql.password_file")
    if password is None:
        return config
    return dataclasses.replace(config, mysql=dataclasses.replace(mysql, password=Secret(password)))


def _with_admin_token(config: Config, env: Mapping[str, str]) -> Config:
    http = config.http
    token = _secret_value(env, "HTTP_ADMIN_TOKEN", http.admin_token_file, "http.admin_token_file")
    if token is None:
        return config
    return dataclasses.replace(config, http=dataclasses.replace(http, admin_token=Secret(token)))


def _secret_value(env: Mapping[str, str], name: str, path: str, where: str) -> str | None:
    """A secret from env ``VICIDIAL_CDC_<name>``, else from the file ``path`` (one line)."""
    value = env.get(f"{ENV_PREFIX}{name}")
    if value is None and path:
        try:
            value = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read {where} {path}: {exc.strerror}") from exc
    return value
