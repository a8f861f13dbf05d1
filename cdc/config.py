"""Configuration: one TOML file plus ``VICIDIAL_CDC_<SECTION>_<KEY>`` env overrides.

Loaded once into frozen dataclasses; unknown keys are an error. Secrets (the MySQL
password) come only from the environment or a file and are redacted in ``repr``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import ipaddress
import logging
import math
import os
import re
import ssl
import stat
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .retry import DEFAULT_RETRY, RetryPolicy
from .vicidial import DISABLED, is_disabled, strip_var

log = logging.getLogger(__name__)

ENV_PREFIX = "VICIDIAL_CDC_"

#: Far above the ids people give real replicas (1..a few hundred), below 2**32.
DEFAULT_SERVER_ID = 3_840_000_001


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value that never prints."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')" if self.value else "Secret('')"


class SslMode(enum.StrEnum):
    """``[mysql] ssl_mode``: MySQL's ``--ssl-mode`` values (MariaDB: ``--ssl``,
    ``--ssl-verify-server-cert``). Every mode but the first two refuses plaintext."""

    DISABLED = "disabled"  # plaintext
    PREFERRED = "preferred"  # TLS when the server offers it, not verified: loopback only
    REQUIRED = "required"  # TLS or no connection; the server is not verified
    VERIFY_CA = "verify_ca"  # ... and its certificate is signed by ssl_ca (or a system CA)
    VERIFY_IDENTITY = "verify_identity"  # ... and names [mysql] host


@dataclass(frozen=True, slots=True)
class MysqlConfig:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "vicidial_cdc"
    #: Read from ``password_file`` or env ``VICIDIAL_CDC_MYSQL_PASSWORD``, never from TOML.
    password: Secret = Secret("")
    password_file: str = ""
    database: str = "asterisk"
    #: Replica id announced to the server; must differ from every real replica's.
    server_id: int = DEFAULT_SERVER_ID
    connect_timeout_s: float = 10.0
    #: A binlog read with no packet for this long is a dead connection.
    read_timeout_s: float = 30.0
    #: The server sends a heartbeat when idle this long (kept below read_timeout_s).
    heartbeat_s: float = 5.0
    #: Name of this VICIdial database in outbox keys and metrics (default: host).
    source: str = ""
    #: TLS for every connection (the binlog carries leads and password hashes), under
    #: the MySQL client names. "": verify_identity when ssl_ca or ssl_cert is set,
    #: else preferred. See :class:`SslMode`.
    ssl_mode: str = ""
    #: PEM file of the CA that signed the server's certificate ("": the system's CAs).
    ssl_ca: str = ""
    #: Client certificate and its unencrypted key (PEM), for accounts ``REQUIRE X509``.
    ssl_cert: str = ""
    ssl_key: str = ""

    @property
    def source_name(self) -> str:
        return self.source or self.host

    @property
    def tls_mode(self) -> SslMode:
        """The effective mode: ``ssl_mode``, or what the TLS files imply when it is empty."""
        if self.ssl_mode:
            return SslMode(self.ssl_mode.lower())  # MySQL writes them upper case
        return SslMode.VERIFY_IDENTITY if self.ssl_ca or self.ssl_cert else SslMode.PREFERRED

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context of ``tls_mode`` (``None``: disabled or preferred).

        Built at each call, so a reconnect reads renewed certificates. Raises
        :class:`OSError` or :class:`ssl.SSLError` for files that cannot be used.
        """
        mode = self.tls_mode
        if mode in (SslMode.DISABLED, SslMode.PREFERRED):
            return None
        if mode is SslMode.REQUIRED:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=self.ssl_ca or None)
            ctx.check_hostname = mode is SslMode.VERIFY_IDENTITY
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ssl_cert:
            ctx.load_cert_chain(self.ssl_cert, self.ssl_key or None)
        return ctx


@dataclass(frozen=True, slots=True)
class ReaderConfig:
    #: "current" | "earliest" | "FILE:POS" | "D-S-N" (MariaDB GTID). Used only
    #: when the state store holds no checkpoint yet.
    start: str = "current"
    #: Batches in flight between the reader thread and the pipeline.
    queue_batches: int = 64
    batch_rows: int = 500
    #: Binlog seconds a vicidial_list insert waits for its add_lead api_log row.
    match_window_s: float = 30.0
    #: Binlog seconds a matched lead waits for its custom_<list_id> row.
    custom_wait_s: float = 10.0
    max_pending: int = 100_000
    #: Estimated bytes of unmatched vicidial_list inserts kept in memory (the oldest is
    #: evicted past it; an evicted API lead is fetched when its add_lead row comes).
    max_pending_bytes: int = 64 * 1024 * 1024
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    #: While a fault that reconnecting cannot heal stands (cdc.reader.faults): re-check this often.
    fault_recheck_s: float = 60.0
    #: Seconds between tries to read a custom_<list_id> table the account cannot read
    #: (the reader re-reads its columns; the service releases the leads waiting on it).
    unreadable_retry_s: float = 60.0
    #: Seconds a lead waits for such a table before it becomes a dead letter naming the GRANT.
    unreadable_max_wait_s: float = 86400.0
    #: Charset of VICIdial's PHP connection when use_non_latin=0: the server's default
    #: (``@@character_set_server``, read at start) unless set here.
    server_charset: str = ""
    #: Longest streamer outage to survive: binlogs must be kept at least this long.
    max_downtime_s: float = 86400.0
    #: Run ``vicidial-cdc check`` at start-up and log what is not right (never fatal).
    check_at_start: bool = True
    #: "fast": raw replication packets, only watched tables decoded (``cdc.reader.raw``);
    #: "library": ``mysql-replication``'s event objects (``cdc.reader.library``), the fallback.
    decoder: str = "fast"


@dataclass(frozen=True, slots=True)
class StateConfig:
    path: str = "/var/lib/vicidial-cdc/state.db"
    #: Delivered rows older than this are pruned. They keep no lead data meanwhile: on
    #: delivery the URL shrinks to scheme://host:port and the body is emptied.
    retention_s: float = 7 * 86400.0
    #: How often the WAL is checkpointed and truncated, so that lead data blanked at
    #: delivery (and pruned rows) leaves the -wal file too, not only the database pages.
    erase_interval_s: float = 60.0
    #: How long a write waits for another process's write lock on the state file (an
    #: operator command, an sqlite3 shell) before it fails: the streamer then stops.
    busy_limit_s: float = 120.0


@dataclass(frozen=True, slots=True)
class HttpConfig:
    #: Metrics and health server; loopback unless told otherwise.
    listen: str = "127.0.0.1:9108"

    def host_port(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"http.listen must be HOST:PORT, got {self.listen!r}")
        return host.strip("[]") or "127.0.0.1", int(port)


@dataclass(frozen=True, slots=True)
class EndpointLimits:
    """Per-endpoint (scheme://host:port) sending limits."""

    concurrency: int = 16
    rate_per_s: float = 50.0
    burst: int = 50
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0


# Named endpoints and fan-out: the model (loaded by _with_endpoints, at the end).

#: The endpoint that is VICIdial's own URL setting (its "API New Lead URL", or [urls]):
#: a GET whose endpoint id is the URL's ``host:port``. Reserved: no [endpoints.vicidial].
VICIDIAL_ENDPOINT = "vicidial"


class Format(enum.StrEnum):
    """How an endpoint's request carries the lead (:mod:`cdc.payload`)."""

    GET = "get"  # VICIdial's request, byte for byte
    POST_FORM = "post-form"  # the same variables as an x-www-form-urlencoded body
    POST_JSON = "post-json"  # the lead.created event (schemas/lead.created.v1.json)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """One ``[endpoints.NAME]`` table; ``name`` is its endpoint id (outbox key, metric label)."""

    name: str
    #: URL template with VICIdial's tokens; ``None``: the URL VICIdial's setting resolves to.
    #: Not in ``repr``: people put keys in query strings.
    url: str | None = field(default=None, repr=False)
    format: Format = Format.GET
    headers: tuple[tuple[str, Secret], ...] = ()
    signing_secrets: tuple[Secret, ...] = ()
    #: Origins (``scheme://host:port``, as :func:`cdc.resolve.origin_of` gives them) this
    #: endpoint's requests may go to: ``allowed_origins`` plus the origin of its own fixed
    #: ``url``. Empty: anywhere (an endpoint without secrets that states none). Not in
    #: ``repr``, like ``url``.
    allowed_origins: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class FanoutConfig:
    """``[fanout]``: the endpoints each lead goes to, with VICIdial's precedence.

    A list's entry replaces the system level for its leads; an empty tuple is
    ``---DISABLED---`` (no endpoint at all). A list without an entry gets ``system``.
    """

    system: tuple[str, ...] = (VICIDIAL_ENDPOINT,)
    lists: Mapping[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointHeaders:
    """What the sender adds to each request of one named endpoint (``[endpoints.NAME]``)."""

    #: Extra headers; the values may be tokens, so they never print.
    headers: tuple[tuple[str, Secret], ...] = ()
    #: Standard Webhooks ``whsec_`` secrets: one ``v1`` signature each, in this order.
    signing_secrets: tuple[Secret, ...] = ()
    #: The endpoint's allowed origins: the sender checks them again before sending.
    allowed_origins: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    #: Requests in flight across all endpoints (``concurrency`` is per endpoint).
    max_in_flight: int = 200
    defaults: EndpointLimits = EndpointLimits()
    #: Overrides keyed by "host:port" (or "scheme://host:port").
    endpoints: Mapping[str, EndpointLimits] = field(default_factory=dict)
    #: Headers and signing secrets keyed by endpoint id, from ``[endpoints.NAME]``.
    endpoint_headers: Mapping[str, EndpointHeaders] = field(default_factory=dict)
    #: The top-level ``[endpoints.NAME]`` tables by name, and ``[fanout]`` (see "Named
    #: endpoints and fan-out" below): kept here, as only delivery reads them.
    named_endpoints: Mapping[str, EndpointConfig] = field(default_factory=dict)
    fanout: FanoutConfig = field(default_factory=FanoutConfig)
    max_response_bytes: int = 65536
    #: Verify TLS certificates (never turn off in production).
    verify_tls: bool = True
    shutdown_grace_s: float = 20.0
    #: Who sends: "send" (always us), "watch" (VICIdial's own sender; we retry its
    #: failures), "auto" (per lead: watch where VICIdial sends, else send).
    mode: str = "auto"
    #: A VICIdial attempt logged in vicidial_url_log without its result this long: failed.
    vicidial_attempt_timeout_s: float = 60.0
    #: Send ``Idempotency-Key`` and ``webhook-id`` (stable per lead and endpoint).
    idempotency_headers: bool = True
    #: Retry schedule: full jitter under min(cap, base * factor**(attempt-1)); the keys
    #: stay flat in the file, :attr:`retry_policy` is the schedule they make.
    retry_base_s: float = DEFAULT_RETRY.base_s
    retry_factor: float = DEFAULT_RETRY.factor
    retry_cap_s: float = DEFAULT_RETRY.cap_s
    max_attempts: int = DEFAULT_RETRY.max_attempts
    #: A delivery still failing this long after it was enqueued goes dead.
    max_age_s: float = DEFAULT_RETRY.max_age_s
    #: 4xx other than 408/425/429 go dead at once (false: retried like 5xx).
    dead_on_4xx: bool = DEFAULT_RETRY.dead_on_4xx
    #: Consecutive failures that open an endpoint's circuit breaker.
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    breaker_max_cooldown_s: float = 600.0

    def limits_for(self, endpoint_id: str, origin: str) -> EndpointLimits:
        return self.endpoints.get(endpoint_id) or self.endpoints.get(origin) or self.defaults

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_s=self.retry_base_s,
            factor=self.retry_factor,
            cap_s=self.retry_cap_s,
            max_attempts=self.max_attempts,
            max_age_s=self.max_age_s,
            dead_on_4xx=self.dead_on_4xx,
        )


@dataclass(frozen=True, slots=True)
class UrlsConfig:
    """URLs defined in the config file, for builds without VICIdial's own setting."""

    system: str | None = None
    lists: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "INFO"
    format: str = "json"


@dataclass(frozen=True, slots=True)
class Config:
    mysql: MysqlConfig = MysqlConfig()
    reader: ReaderConfig = ReaderConfig()
    state: StateConfig = StateConfig()
    http: HttpConfig = HttpConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    urls: UrlsConfig = UrlsConfig()
    log: LogConfig = LogConfig()


#: ``reader.decoder`` values.
DECODERS = ("fast", "library")

_SECTIONS: dict[str, type[Any]] = {
    "mysql": MysqlConfig,
    "reader": ReaderConfig,
    "state": StateConfig,
    "http": HttpConfig,
    "delivery": DeliveryConfig,
    "urls": UrlsConfig,
    "log": LogConfig,
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
    unknown = set(raw) - set(_SECTIONS) - {"endpoints", "fanout"}
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table")
        if name == "urls":
            sections[name] = _load_urls(table)
        elif name == "delivery":
            sections[name] = _load_delivery(table, env)
        else:
            sections[name] = _build(cls, table, name, env)
    if sections["state"].busy_limit_s < 0:
        raise ConfigError(f"state.busy_limit_s must be >= 0, got {sections['state'].busy_limit_s!r}")
    if sections["reader"].decoder not in DECODERS:
        raise ConfigError(f"reader.decoder must be fast or library, got {sections['reader'].decoder!r}")
    config = Config(**sections)
    config = _with_endpoints(config, raw.get("endpoints", {}), raw.get("fanout"), env)
    config = _with_password(config, env)
    validate(config)
    for warning in tls_warnings(config.mysql):
        log.warning("config.tls_warning %s", warning)
    return config


def _build(cls: type[Any], table: Mapping[str, Any], section: str, env: Mapping[str, str]) -> Any:
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
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is Secret or _is_nested(hint):
            continue
        env_key = f"{ENV_PREFIX}{section.upper()}_{f.name.upper()}"
        if env_key in env:
            values[f.name] = _coerce(env[env_key], hint, f"{env_key}")
        elif f.name in table:
            values[f.name] = _check_type(table[f.name], hint, f"{section}.{f.name}")
    return cls(**values)


def _is_nested(hint: Any) -> bool:
    return dataclasses.is_dataclass(hint) or typing.get_origin(hint) is Mapping


def _coerce(text: str, hint: Any, where: str) -> Any:
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
        raise ConfigError(f"{where}: cannot read {text!r} as {hint.__name__}") from exc
    return text


def _check_type(value: Any, hint: Any, where: str) -> Any:
    if isinstance(hint, types.UnionType):
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {hint.__name__}, got {type(value).__name__}")
    return value


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
    endpoints_raw = table.pop("endpoints", {})
    for derived in ("endpoint_headers", "named_endpoints", "fanout"):
        if derived in table:
            raise ConfigError(
                f"delivery.{derived} is not a setting: write [endpoints.NAME] and [fanout] at the top level"
            )
    limit_keys = {f.name for f in dataclasses.fields(EndpointLimits)}
    defaults_raw = {k: table.pop(k) for k in list(table) if k in limit_keys}
    base = _build(DeliveryConfig, table, "delivery", env)
    defaults = _build(EndpointLimits, defaults_raw, "delivery", env)
    if not isinstance(endpoints_raw, dict):
        raise ConfigError("[delivery.endpoints] must be a table of tables")
    endpoints: dict[str, EndpointLimits] = {}
    for name, sub in endpoints_raw.items():
        if not isinstance(sub, dict):
            raise ConfigError(f"[delivery.endpoints.{name!r}] must be a table")
        merged = {**{f: getattr(defaults, f) for f in limit_keys}, **sub}
        endpoints[str(name)] = _build(EndpointLimits, merged, f"delivery.endpoints.{name}", {})
    if base.mode not in ("send", "watch", "auto"):
        raise ConfigError(f"delivery.mode must be send, watch or auto, got {base.mode!r}")
    for lim in (defaults, *endpoints.values()):
        if lim.concurrency < 1 or lim.rate_per_s <= 0 or lim.burst < 1 or lim.timeout_s <= 0:
            raise ConfigError("delivery limits must be positive (concurrency, rate_per_s, burst, timeout_s)")
    result: DeliveryConfig = dataclasses.replace(base, defaults=defaults, endpoints=endpoints)
    return result


def _with_password(config: Config, env: Mapping[str, str]) -> Config:
    mysql = config.mysql
    password = env.get(f"{ENV_PREFIX}MYSQL_PASSWORD")
    if password is None and mysql.password_file:
        try:
            password = Path(mysql.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"cannot read mysql.password_file {mysql.password_file}: {exc.strerror}"
            ) from exc
    if password is None:
        return config
    return dataclasses.replace(config, mysql=dataclasses.replace(mysql, password=Secret(password)))


# -- Values validated at load -------------------------------------------------------------
#
# Types and unknown keys are checked while building; here each value is checked against
# what it may be, and a bad one is a ConfigError naming the key and the allowed values.


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

#: ``section.key`` -> allowed values, for every number of the flat sections.
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
    "delivery.retry_base_s": _POSITIVE,
    "delivery.retry_factor": _AT_LEAST_ONE,
    "delivery.retry_cap_s": _POSITIVE,
    "delivery.max_attempts": _AT_LEAST_ONE,
    "delivery.max_age_s": _POSITIVE,
    "delivery.breaker_failures": _AT_LEAST_ONE,
    "delivery.breaker_cooldown_s": _POSITIVE,
    "delivery.breaker_max_cooldown_s": _POSITIVE,
}
#: Per-endpoint limits (``[delivery]`` defaults, ``[delivery.endpoints.*]``, ``[endpoints.*]``).
_LIMIT_RANGES: dict[str, _Range] = {
    "concurrency": _AT_LEAST_ONE,
    "rate_per_s": _POSITIVE,
    "burst": _AT_LEAST_ONE,
    "timeout_s": _POSITIVE,
    "connect_timeout_s": _POSITIVE,
}
#: (section, smaller key, larger key): the second may not be below the first.
_ORDERED = (
    ("reader", "reconnect_initial_s", "reconnect_max_s"),
    ("delivery", "retry_base_s", "retry_cap_s"),
    ("delivery", "breaker_cooldown_s", "breaker_max_cooldown_s"),
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")
#: A URL template after VICIdial's ``VAR`` prefix (:func:`cdc.vicidial.strip_var`).
_URL_TEMPLATE = re.compile(r"\s*https?://[^/?#\s]", re.IGNORECASE)
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


def validate(config: Config) -> None:
    """Every value against what it may be; :class:`ConfigError` names the first bad one."""
    for section in _SECTIONS:
        values = getattr(config, section)
        for key, allowed in _RANGES.items():
            if key.startswith(section + "."):
                _check_range(key, getattr(values, key.partition(".")[2]), allowed)
    for section, low, high in _ORDERED:
        values = getattr(config, section)
        if getattr(values, high) < getattr(values, low):
            raise ConfigError(
                f"{section}.{high} must be >= {section}.{low} ({getattr(values, low):g}), "
                f"got {getattr(values, high):g}"
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
    _check_choice("log.level", config.log.level.upper(), LOG_LEVELS)
    _check_choice("log.format", config.log.format, LOG_FORMATS)
    urls = {"urls.system": config.urls.system} | {f"urls.lists.{k}": v for k, v in config.urls.lists.items()}
    for where, url in urls.items():
        if url is not None and not is_disabled(url) and not _URL_TEMPLATE.match(strip_var(url)):
            raise ConfigError(
                f"{where} must be an http:// or https:// URL template (VICIdial's VAR prefix "
                f"allowed) or {DISABLED!r}"
            )


def _check_range(where: str, value: float, allowed: _Range) -> None:
    if not allowed.allows(value):
        raise ConfigError(f"{where} must be {allowed}, got {value!r}")


def _check_choice(where: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{where} must be one of {', '.join(allowed)}, got {value!r}")


def _validate_reader(reader: ReaderConfig) -> None:
    from . import charset  # pure; the charsets VICIdial's connection may use
    from .reader.library import parse_start  # raises ConfigError naming reader.start

    parse_start(reader.start)
    if reader.server_charset:
        try:
            charset.python_codec(reader.server_charset)
        except ValueError as exc:
            raise ConfigError(
                f"reader.server_charset: {exc}; allowed: '' (the server's character_set_server) "
                f"or one of {', '.join(charset.encodable_charsets())}"
            ) from None


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
    if mysql.ssl_mode:
        _check_choice("mysql.ssl_mode", mysql.ssl_mode.lower(), tuple(m.value for m in SslMode))
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


# -- Named endpoints and fan-out ---------------------------------------------------------
#
# [endpoints.NAME]  url (template; absent: VICIdial's resolved URL), format, headers,
#                   signing_secrets, and the per-endpoint limits of [delivery.endpoints].
# [fanout]          system = [NAMES], [fanout.lists] "<list_id>" = [NAMES] | "---DISABLED---".
# Secrets in headers and signing_secrets are read from ${ENV:NAME} or ${FILE:/path} only.

_ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_REFERENCE = re.compile(r"\$\{(ENV|FILE):([^}]*)\}")
#: Set by the sender itself (or by aiohttp); an endpoint's headers may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "transfer-encoding",
        "connection",
        "idempotency-key",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
#: Header names whose value must come from ${ENV:...} or ${FILE:...}, never the TOML.
_SENSITIVE_HEADER = re.compile(r"auth|token|secret|key|pass|cookie|session|signature", re.IGNORECASE)
_ENDPOINT_KEYS = frozenset({"url", "format", "headers", "signing_secrets", "allowed_origins"})
#: An ``allowed_origins`` entry: ``scheme://host[:port]``, nothing after but an optional ``/``.
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?/?", re.IGNORECASE)
#: The scheme and authority of a URL template (after VICIdial's optional ``VAR``).
_TEMPLATE_ORIGIN = re.compile(r"\s*(https?://[^/?#\s]+)", re.IGNORECASE)


def _with_endpoints(config: Config, raw: Any, fanout_raw: Any, env: Mapping[str, str]) -> Config:
    """Add ``[endpoints.*]`` and ``[fanout]`` to ``delivery``, with their limits and headers."""
    if not isinstance(raw, dict):
        raise ConfigError("[endpoints] must be a table of [endpoints.NAME] tables")
    limit_keys = {f.name for f in dataclasses.fields(EndpointLimits)}
    delivery = config.delivery
    limits = dict(delivery.endpoints)
    extras: dict[str, EndpointHeaders] = {}
    endpoints: dict[str, EndpointConfig] = {}
    for name, table in raw.items():
        where = f"endpoints.{name}"
        if name == VICIDIAL_ENDPOINT:
            raise ConfigError(
                f"[endpoints.{VICIDIAL_ENDPOINT}] is reserved for VICIdial's own URL setting: "
                "give your endpoint another name"
            )
        if not _ENDPOINT_NAME.fullmatch(name):
            raise ConfigError(
                f"endpoint name {name!r} must be 1-63 letters, digits, '_', '-' or '.' (it is a metric label)"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"[{where}] must be a table")
        unknown = set(table) - _ENDPOINT_KEYS - limit_keys
        if unknown:
            raise ConfigError(f"unknown key(s) in [{where}]: {', '.join(sorted(unknown))}")
        endpoint = _endpoint(name, table, where, env)
        endpoints[name] = endpoint
        own_limits = {k: v for k, v in table.items() if k in limit_keys}
        if own_limits:
            if name in limits:
                raise ConfigError(
                    f"limits of endpoint {name!r} are set in [{where}] and "
                    f"[delivery.endpoints.{name}]: keep one"
                )
            merged = {**{k: getattr(delivery.defaults, k) for k in limit_keys}, **own_limits}
            lim: EndpointLimits = _build(EndpointLimits, merged, where, {})
            if lim.concurrency < 1 or lim.rate_per_s <= 0 or lim.burst < 1 or lim.timeout_s <= 0:
                raise ConfigError(
                    f"[{where}] limits must be positive (concurrency, rate_per_s, burst, timeout_s)"
                )
            limits[name] = lim
        if endpoint.headers or endpoint.signing_secrets:
            extras[name] = EndpointHeaders(
                endpoint.headers, endpoint.signing_secrets, endpoint.allowed_origins
            )
    fanout = _load_fanout(fanout_raw, endpoints)
    delivery = dataclasses.replace(
        delivery, endpoints=limits, endpoint_headers=extras, named_endpoints=endpoints, fanout=fanout
    )
    result: Config = dataclasses.replace(config, delivery=delivery)
    return result


def _endpoint(name: str, table: Mapping[str, Any], where: str, env: Mapping[str, str]) -> EndpointConfig:
    url = table.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{where}.url must be a URL template (leave it out to use VICIdial's URL)")
        if "${" in url:
            raise ConfigError(f"{where}.url: ${{ENV:...}} and ${{FILE:...}} are read in headers only")
        if not _URL_TEMPLATE.match(strip_var(url)):
            raise ConfigError(f"{where}.url must start with http:// or https://")
    fmt = table.get("format", Format.GET.value)
    if fmt not in {f.value for f in Format}:
        raise ConfigError(f"{where}.format must be one of {', '.join(f.value for f in Format)}, got {fmt!r}")
    headers_raw = table.get("headers", {})
    if not isinstance(headers_raw, dict):
        raise ConfigError(f"{where}.headers must be a table of header = value")
    headers: list[tuple[str, Secret]] = []
    for header, value in headers_raw.items():
        headers.append((header, _header_value(header, value, f"{where}.headers.{header}", env)))
    secrets_raw = table.get("signing_secrets", [])
    if not isinstance(secrets_raw, list):
        raise ConfigError(f'{where}.signing_secrets must be a list of "${{ENV:NAME}}" or "${{FILE:/path}}"')
    secrets: list[Secret] = []
    for i, ref in enumerate(secrets_raw):
        secrets.extend(_signing_secrets(ref, f"{where}.signing_secrets[{i}]", env))
    # A header written with ${ENV:...}/${FILE:...} is a secret (credential-like names must be).
    has_secrets = bool(secrets) or any(
        isinstance(value, str) and _REFERENCE.search(value) for value in headers_raw.values()
    )
    return EndpointConfig(
        name=name,
        url=url,
        format=Format(fmt),
        headers=tuple(headers),
        signing_secrets=tuple(secrets),
        allowed_origins=_allowed_origins(table.get("allowed_origins", []), url, has_secrets, where),
    )


def _allowed_origins(raw: Any, url: str | None, has_secrets: bool, where: str) -> tuple[str, ...]:
    """``allowed_origins`` normalized, plus a fixed ``url``'s origin; secrets that could go anywhere: error.

    Without its own ``url`` (or with a host made of tokens) an endpoint's requests go where
    VICIdial's settings rows (or the lead) say, and whoever can edit a list's URL in
    VICIdial would receive its headers and signatures.
    """
    from .resolve import origin_of  # pure; imported here as resolve depends on config

    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f'{where}.allowed_origins must be a list such as ["https://crm.example.com"]')
    origins: list[str] = []
    for text in raw:
        if not _ORIGIN.fullmatch(text.strip()):
            raise ConfigError(
                f"{where}.allowed_origins: {text!r} is not an origin: write scheme://host[:port]"
                " (http or https) without user, path or query"
            )
        origins.append(origin_of(text.strip())[0])
    fixed = _TEMPLATE_ORIGIN.match(strip_var(url.lstrip())) if url is not None else None
    if fixed is not None and "--a--" not in fixed.group(1).lower():
        origins.append(origin_of(fixed.group(1))[0])
    if has_secrets and not origins:
        source = (
            "it has no url, so its URL comes from VICIdial's settings rows, which anyone who can"
            " edit a list's URL in VICIdial controls"
            if url is None
            else "its url takes the host from lead data (a token before the path)"
        )
        raise ConfigError(
            f"[{where}] sends secrets (headers from ${{ENV:...}}/${{FILE:...}} or signing_secrets) but"
            f" {source}: add allowed_origins = [\"https://crm.example.com\"] (the scheme://host[:port]"
            " they may be sent to), or give the endpoint its own url"
        )
    return tuple(dict.fromkeys(origins))


def _header_value(header: str, value: Any, where: str, env: Mapping[str, str]) -> Secret:
    if not _HEADER_NAME.fullmatch(header):
        raise ConfigError(f"{where}: not a valid HTTP header name")
    if header.lower() in _RESERVED_HEADERS:
        raise ConfigError(f"{where}: the sender sets {header} itself")
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    if _SENSITIVE_HEADER.search(header) and not _REFERENCE.search(value):
        raise ConfigError(
            f"{where} looks like a credential: write it as ${{ENV:NAME}} or ${{FILE:/path}} "
            '(for example "Bearer ${ENV:CRM_TOKEN}"), never in the config file'
        )
    text = _expand(value, where, env)
    if not text.isascii() or any(ch < " " or ch == "\x7f" for ch in text):
        raise ConfigError(f"{where}: the value must be printable ASCII (no line breaks)")
    return Secret(text)


def _signing_secrets(ref: Any, where: str, env: Mapping[str, str]) -> list[Secret]:
    """One ``${ENV:...}``/``${FILE:...}`` entry: one secret, or several separated by whitespace."""
    from .signing import decode_secret  # pure; imported here so that signing stays config-free

    if not isinstance(ref, str) or not _REFERENCE.fullmatch(ref.strip()):
        raise ConfigError(
            f'{where} must be "${{ENV:NAME}}" or "${{FILE:/path}}": signing secrets are never '
            "written in the config file"
        )
    out: list[Secret] = []
    for secret in _expand(ref.strip(), where, env).split():
        try:
            decode_secret(secret)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        out.append(Secret(secret))
    return out


def _expand(value: str, where: str, env: Mapping[str, str]) -> str:
    """``value`` with each ``${ENV:NAME}`` and ``${FILE:/path}`` replaced; errors name no secret."""

    def read(match: re.Match[str]) -> str:
        kind, arg = match.group(1), match.group(2)
        if kind == "ENV":
            text = env.get(arg)
            if text is None:
                raise ConfigError(f"{where}: the environment variable {arg} is not set")
        else:
            if not Path(arg).is_absolute():
                raise ConfigError(f"{where}: ${{FILE:{arg}}} must be an absolute path")
            try:
                text = Path(arg).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
                raise ConfigError(f"{where}: cannot read {arg}: {reason}") from None
        if not text.strip():
            raise ConfigError(f"{where}: ${{{kind}:{arg}}} is empty")
        return text

    if "${" in _REFERENCE.sub("", value):
        raise ConfigError(f"{where}: only ${{ENV:NAME}} and ${{FILE:/path}} are understood after '$'")
    return _REFERENCE.sub(read, value)


def _load_fanout(raw: Any, endpoints: Mapping[str, EndpointConfig]) -> FanoutConfig:
    known = set(endpoints) | {VICIDIAL_ENDPOINT}
    if raw is None:
        fanout = FanoutConfig()
    else:
        if not isinstance(raw, dict):
            raise ConfigError("[fanout] must be a table")
        unknown = set(raw) - {"system", "lists"}
        if unknown:
            raise ConfigError(f"unknown key(s) in [fanout]: {', '.join(sorted(unknown))}")
        system = _names(raw.get("system", [VICIDIAL_ENDPOINT]), "fanout.system", known)
        lists_raw = raw.get("lists", {})
        if not isinstance(lists_raw, dict):
            raise ConfigError('[fanout.lists] must be a table of "<list_id>" = [endpoint names]')
        lists: dict[int, tuple[str, ...]] = {}
        for key, value in lists_raw.items():
            if not str(key).isdigit():
                raise ConfigError(f"[fanout.lists] key {key!r} is not a numeric list_id")
            if value == []:
                continue  # blank: the system level, as in VICIdial
            lists[int(key)] = _names(value, f"fanout.lists.{key}", known)
        fanout = FanoutConfig(system=system, lists=lists)
    used = set(fanout.system).union(*fanout.lists.values())
    unused = sorted(set(endpoints) - used)
    if unused:
        raise ConfigError(
            f"endpoint(s) {', '.join(unused)} defined but not named in [fanout] "
            "(system = [...] or [fanout.lists]): add them there or remove them"
        )
    return fanout


def _names(value: Any, where: str, known: set[str]) -> tuple[str, ...]:
    if isinstance(value, str) and is_disabled(value):
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of endpoint names or {DISABLED!r}")
    missing = [v for v in value if v not in known]
    if missing:
        raise ConfigError(
            f"{where} names undefined endpoint(s) {', '.join(missing)} "
            f"(define [endpoints.NAME]; {VICIDIAL_ENDPOINT!r} is VICIdial's own URL)"
        )
    if len(set(value)) != len(value):
        raise ConfigError(f"{where} names an endpoint twice")
    return tuple(value)
