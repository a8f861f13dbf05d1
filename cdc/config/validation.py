"""Every value against what it may be, once the sections are built.

Types and unknown keys are checked while building (:mod:`cdc.config.values`); here
each value is checked against its range or its partner, and a bad one is a
:class:`~cdc.errors.ConfigError` naming the key and the allowed values. ``reader.start``
is read here too (:func:`parse_start`), for the check and for the service.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import re
import ssl
import stat
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..records import Position
from ..vicidial import DISABLED, is_disabled, strip_var
from .sections import Config, MysqlConfig, ReaderConfig, SslMode

__all__ = ["URL_TEMPLATE", "is_ip_address", "parse_start", "tls_warnings", "validate"]


@dataclass(frozen=True, slots=True)
class _Range:
    """Allowed numbers: ``low`` (inclusive unless ``open_low``) up to ``high``, finite."""

    low: float
    high: float = math.inf
    open_low: bool = False

    def allows(self, value: float) -> bool:
        above = value > self.low if self.open_low else value >= self.low
        return math.isfinite(value) and above and value <= self.high

    def __str__(self) -> str:
        if self.high != math.inf:
            return f"between {int(self.low)} and {int(self.high)}"
        return f"{'>' if self.open_low else '>='} {self.low:g}"


_POSITIVE = _Range(0, open_low=True)
_NOT_NEGATIVE = _Range(0)
_AT_LEAST_ONE = _Range(1)

#: ``section.key`` -> allowed values, for every number of the sections (``[delivery.retry]`` too).
_RANGES: dict[str, _Range] = {
    "mysql.port": _Range(1, 65535),
    "mysql.server_id": _Range(1, 2**32 - 1),
    "mysql.connect_timeout_s": _POSITIVE,
    "mysql.read_timeout_s": _POSITIVE,
    "mysql.heartbeat_s": _POSITIVE,
    "reader.queue_batches": _AT_LEAST_ONE,
    "reader.batch_rows": _AT_LEAST_ONE,
    "reader.match_window_s": _POSITIVE,
    "reader.custom_wait_s": _NOT_NEGATIVE,
    "reader.max_pending": _AT_LEAST_ONE,
    "reader.reconnect_initial_s": _POSITIVE,
    "reader.reconnect_max_s": _POSITIVE,
    "reader.max_downtime_s": _POSITIVE,
    "state.retention_s": _POSITIVE,
    "delivery.max_in_flight": _AT_LEAST_ONE,
    "delivery.max_response_bytes": _NOT_NEGATIVE,
    "delivery.shutdown_grace_s": _NOT_NEGATIVE,
    "delivery.vicidial_attempt_timeout_s": _POSITIVE,
    "delivery.breaker_failures": _AT_LEAST_ONE,
    "delivery.breaker_cooldown_s": _POSITIVE,
    "delivery.breaker_max_cooldown_s": _POSITIVE,
    "delivery.retry.base_s": _POSITIVE,
    "delivery.retry.factor": _AT_LEAST_ONE,
    "delivery.retry.cap_s": _POSITIVE,
    "delivery.retry.max_attempts": _AT_LEAST_ONE,
    "delivery.retry.max_age_s": _POSITIVE,
}
#: Per-endpoint limits (``[delivery]`` defaults, ``[delivery.endpoints.*]``, ``[endpoints.*]``).
_LIMIT_RANGES: dict[str, _Range] = {
    "concurrency": _AT_LEAST_ONE,
    "rate_per_s": _POSITIVE,
    "burst": _AT_LEAST_ONE,
    "timeout_s": _POSITIVE,
    "connect_timeout_s": _POSITIVE,
}
#: (smaller key, larger key): the second may not be below the first.
_ORDERED = (
    ("reader.reconnect_initial_s", "reader.reconnect_max_s"),
    ("delivery.retry.base_s", "delivery.retry.cap_s"),
    ("delivery.breaker_cooldown_s", "delivery.breaker_max_cooldown_s"),
)
#: A URL template after VICIdial's ``VAR`` prefix (:func:`cdc.vicidial.strip_var`).
URL_TEMPLATE = re.compile(r"\s*https?://[^/?#\s]", re.IGNORECASE)
_GTID_LIST = re.compile(r"\d+-\d+-\d+(,\d+-\d+-\d+)*")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def validate(config: Config) -> None:
    """Every value against what it may be; :class:`ConfigError` names the first bad one."""
    for key, allowed in _RANGES.items():
        _check_range(key, _value(config, key), allowed)
    for low, high in _ORDERED:
        if _value(config, high) < _value(config, low):
            raise ConfigError(
                f"{high} must be >= {low} ({_value(config, low):g}), got {_value(config, high):g}"
            )
    limits = {"delivery": config.delivery.defaults}
    for name, lim in config.delivery.endpoints.items():
        named = name in config.delivery.named_endpoints
        limits[f"endpoints.{name}" if named else f"delivery.endpoints.{name}"] = lim
    for where, lim in limits.items():
        for key, allowed in _LIMIT_RANGES.items():
            _check_range(f"{where}.{key}", getattr(lim, key), allowed)
    _validate_mysql(config.mysql)
    _validate_reader(config.reader)
    _validate_listen(config.http.listen)
    if not config.state.path.strip():
        raise ConfigError("state.path must be the path of the state file, got ''")
    urls = {"urls.system": config.urls.system} | {f"urls.lists.{k}": v for k, v in config.urls.lists.items()}
    for where, url in urls.items():
        if url is not None and not is_disabled(url) and not URL_TEMPLATE.match(strip_var(url)):
            raise ConfigError(
                f"{where} must be an http:// or https:// URL template (VICIdial's VAR prefix "
                f"allowed) or {DISABLED!r}"
            )


def _value(config: Config, key: str) -> float:
    """The number at ``key`` (``delivery.retry.base_s``: ``config.delivery.retry.base_s``)."""
    value: Any = config
    for name in key.split("."):
        value = getattr(value, name)
    number: float = value
    return number


def _check_range(where: str, value: float, allowed: _Range) -> None:
    if not allowed.allows(value):
        raise ConfigError(f"{where} must be {allowed}, got {value!r}")


def _validate_reader(reader: ReaderConfig) -> None:
    from .. import charset  # pure; the charsets VICIdial's connection may use

    parse_start(reader.start)
    if reader.server_charset:
        try:
            charset.python_codec(reader.server_charset)
        except ValueError as exc:
            raise ConfigError(
                f"reader.server_charset: {exc}; allowed: '' (the server's character_set_server) "
                f"or one of {', '.join(charset.encodable_charsets())}"
            ) from None


def parse_start(spec: str) -> Position | str:
    """``reader.start``: ``current`` | ``earliest`` | ``FILE:POS`` | ``D-S-N[,D-S-N…]`` (MariaDB GTID)."""
    spec = spec.strip()
    if spec in ("current", "earliest"):
        return spec
    file, sep, pos = spec.rpartition(":")
    if sep and file and pos.isdigit():
        return Position(file, int(pos))
    if _GTID_LIST.fullmatch(spec):
        return spec
    raise ConfigError(
        f"reader.start must be 'current', 'earliest', 'FILE:POS' or a MariaDB GTID, got {spec!r}"
    )


def _validate_listen(listen: str) -> None:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    valid_host = bool(host) and (is_ip_address(host) or _HOSTNAME.fullmatch(host) is not None)
    if not sep or not port.isdigit() or int(port) > 65535 or not valid_host:
        raise ConfigError(
            f"http.listen must be HOST:PORT (an IP address or host name, a port 0-65535, "
            f"IPv6 in brackets: [::1]:9108), got {listen!r}"
        )


def is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 address (not a host name)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _validate_mysql(mysql: MysqlConfig) -> None:
    for key in ("host", "user", "database"):
        if not getattr(mysql, key).strip():
            raise ConfigError(f"mysql.{key} must not be empty")
    mode = mysql.tls_mode
    files = {k: getattr(mysql, k) for k in ("ssl_ca", "ssl_cert", "ssl_key") if getattr(mysql, k)}
    if mode in (SslMode.DISABLED, SslMode.PREFERRED) and files:
        raise ConfigError(
            f"mysql.ssl_mode = {mode.value!r} uses no TLS files, but {', '.join(files)} is set: "
            "set ssl_mode to verify_identity (or leave it empty), or remove the files"
        )
    if mode is SslMode.REQUIRED and mysql.ssl_ca:
        raise ConfigError(
            "mysql.ssl_ca is set but ssl_mode = 'required' does not verify the server: "
            "use verify_identity (or verify_ca), or remove ssl_ca"
        )
    if bool(mysql.ssl_cert) != bool(mysql.ssl_key):
        raise ConfigError("mysql.ssl_cert and mysql.ssl_key go together: set both or neither")
    for key, path in files.items():
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot read mysql.{key} {path}: {exc.strerror}") from None
    try:
        mysql.ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"the TLS files of [mysql] cannot be used ({exc}): ssl_ca must be a PEM CA certificate, "
            "ssl_cert a PEM certificate and ssl_key its unencrypted PEM private key"
        ) from None


def tls_warnings(mysql: MysqlConfig) -> list[str]:
    """What is allowed but unsafe in the TLS settings (logged at load, shown by ``check``)."""
    out: list[str] = []
    if mysql.ssl_key:
        with contextlib.suppress(OSError):
            mode = os.stat(mysql.ssl_key).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                out.append(
                    f"mysql.ssl_key {mysql.ssl_key} is readable by group or others (mode "
                    f"{stat.S_IMODE(mode):04o}): chmod 600 it"
                )
    return out
