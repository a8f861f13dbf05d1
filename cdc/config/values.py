"""One section's values from its TOML table and its ``VICIDIAL_CDC_*`` variables, typed by its dataclass.

Each field's type hint says how a value is read: ``bool``/``int``/``float``/``str`` as
they are, an enum (:class:`enum.StrEnum`) from one of its values. Nested tables
(dataclasses, mappings) and secrets are left to the caller.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .sections import Secret

__all__ = ["ENV_PREFIX", "build_section", "env_key", "is_nested"]

ENV_PREFIX = "VICIDIAL_CDC_"


def env_key(section: str, key: str) -> str:
    """The variable that overrides ``section.key``: ``delivery.retry`` + ``base_s`` is
    ``VICIDIAL_CDC_DELIVERY_RETRY_BASE_S``."""
    return f"{ENV_PREFIX}{section.replace('.', '_').upper()}_{key.upper()}"


def build_section(cls: type[Any], table: Mapping[str, Any], section: str, env: Mapping[str, str]) -> Any:
    """``cls`` from ``table`` (the ``[section]`` of the file) with env overrides; unknown keys refused."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in [{section}]: {', '.join(sorted(unknown))}")
    if "password" in table:
        raise ConfigError(
            "[mysql] password is not read from the config file: use password_file or "
            "the env variable VICIDIAL_CDC_MYSQL_PASSWORD"
        )
    for name in table:
        if hints[name] is Secret:
            raise ConfigError(
                f"[{section}] {name} is not read from the config file: use {name}_file or "
                f"the env variable {env_key(section, name)}"
            )
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is Secret or is_nested(hint):
            continue
        name = env_key(section, f.name)
        if name in env:
            values[f.name] = _coerce(env[name], hint, name, f"{section}.{f.name}")
        elif f.name in table:
            values[f.name] = _check_type(table[f.name], hint, f"{section}.{f.name}")
    return cls(**values)


def is_nested(hint: Any) -> bool:
    """A field that is a table of its own (a dataclass or a mapping), not a value."""
    return dataclasses.is_dataclass(hint) or typing.get_origin(hint) is Mapping


def _coerce(text: str, hint: Any, variable: str, where: str) -> Any:
    hint, optional = _unwrap(hint)
    if _is_enum(hint):
        return None if optional and not text else _choice(text, hint, f"{variable}: {where}")
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except ValueError as exc:
        raise ConfigError(f"{variable}: cannot read {text!r} as {hint.__name__}") from exc
    return text


def _check_type(value: Any, hint: Any, where: str) -> Any:
    hint, optional = _unwrap(hint)
    if _is_enum(hint):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be str, got {type(value).__name__}")
        return None if optional and not value else _choice(value, hint, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__}")
    return value


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """``X`` of ``X | None``, and whether ``None`` was allowed (an empty string is ``None``)."""
    if isinstance(hint, types.UnionType):
        return next(h for h in typing.get_args(hint) if h is not type(None)), True
    return hint, False


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.StrEnum)


def _choice(value: str, hint: type[enum.StrEnum], where: str) -> enum.StrEnum:
    """The member of ``hint`` named by ``value``; else ``where must be a, b or c, got 'x'``."""
    try:
        return hint(value)
    except ValueError:
        *first, last = (member.value for member in hint)
        allowed = f"{', '.join(first)} or {last}" if first else last
        raise ConfigError(f"{where} must be {allowed}, got {value!r}") from None
