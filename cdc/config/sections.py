"""The typed settings: one frozen dataclass per TOML section, and the closed choices as enums.

What each key means and its default live here and nowhere else (the README and
deploy/config.example.toml document them; a test checks the example names every key).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..hooks.config import HooksConfig

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

    @classmethod
    def _missing_(cls, value: object) -> SslMode | None:
        # MySQL writes them upper case (VERIFY_CA).
        return cls.__members__.get(value.upper()) if isinstance(value, str) else None


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
    #: the MySQL client names. ``None`` (``""`` in the file): verify_identity when ssl_ca
    #: or ssl_cert is set, else preferred; :attr:`tls_mode` is the effective one.
    ssl_mode: SslMode | None = None
    #: PEM file of the CA that signed the server's certificate ("": the system's CAs).
    ssl_ca: str = ""
    #: Client certificate and its unencrypted key (PEM), for accounts ``REQUIRE X509``.
    ssl_cert: str = ""
    ssl_key: str = ""

    def __post_init__(self) -> None:
        # A plain string given in code (tests, bench) becomes the enum; "" is unset.
        if self.ssl_mode is not None:
            object.__setattr__(self, "ssl_mode", SslMode(self.ssl_mode) if self.ssl_mode else None)

    @property
    def source_name(self) -> str:
        return self.source or self.host

    @property
    def tls_mode(self) -> SslMode:
        """The effective mode: ``ssl_mode``, or what the TLS files imply when it is unset."""
        if self.ssl_mode is not None:
            return self.ssl_mode
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


class Decoder(enum.StrEnum):
    """``[reader] decoder``: how the binlog is read."""

    FAST = "fast"  # raw replication packets, only watched tables decoded (cdc.reader.raw)
    LIBRARY = "library"  # mysql-replication's event objects (cdc.reader.library), the fallback


#: Every ``reader.decoder``, for tests that run with each reader.
DECODERS = tuple(Decoder)


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
    #: Which binlog reader the service builds (see :class:`Decoder`).
    decoder: Decoder = Decoder.FAST

    def __post_init__(self) -> None:
        # A plain string given in code (tests, bench) becomes the enum, so ``is`` holds.
        object.__setattr__(self, "decoder", Decoder(self.decoder))


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
    #: The status page shows lead data (URLs with names and phones) only when true.
    show_lead_data: bool = False
    #: The status page's actions (retry, purge) need it: read from ``admin_token_file`` or
    #: env ``VICIDIAL_CDC_HTTP_ADMIN_TOKEN``, never from TOML. Empty: no actions at all.
    admin_token: Secret = Secret("")
    admin_token_file: str = ""

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


# Named endpoints and fan-out: the model (loaded by cdc.config.fanout).

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


class DeliveryMode(enum.StrEnum):
    """``[delivery] mode``: who sends a lead's request (:mod:`cdc.modes` decides per lead)."""

    SEND = "send"  # always the streamer
    WATCH = "watch"  # VICIdial's own sender; the streamer re-sends only what it logged as failed
    AUTO = "auto"  # per lead: watch where VICIdial sends, else send


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``[delivery.retry]``: the backoff schedule, and when a delivery goes dead.

    These defaults are the only ones (README, "Retry schedule"): about 20 attempts over a
    day, the last ones 2 h apart. Attempt *n* waits a random time (full jitter) under
    ``min(cap_s, base_s * factor**(n-1))``.
    """

    base_s: float = 5.0
    factor: float = 6.0
    cap_s: float = 7200.0
    max_attempts: int = 20
    #: A delivery still failing this long after it was enqueued goes dead.
    max_age_s: float = 86400.0
    #: 4xx other than 408/425/429 go dead at once (false: retried like 5xx).
    dead_on_4xx: bool = True


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    #: Requests in flight across all endpoints (``concurrency`` is per endpoint).
    max_in_flight: int = 200
    defaults: EndpointLimits = EndpointLimits()
    #: Overrides keyed by "host:port" (or "scheme://host:port").
    endpoints: Mapping[str, EndpointLimits] = field(default_factory=dict)
    #: Headers and signing secrets keyed by endpoint id, from ``[endpoints.NAME]``.
    endpoint_headers: Mapping[str, EndpointHeaders] = field(default_factory=dict)
    #: The top-level ``[endpoints.NAME]`` tables by name, and ``[fanout]`` (loaded by
    #: :mod:`cdc.config.fanout`): kept here, as only delivery reads them.
    named_endpoints: Mapping[str, EndpointConfig] = field(default_factory=dict)
    fanout: FanoutConfig = field(default_factory=FanoutConfig)
    max_response_bytes: int = 65536
    #: Verify TLS certificates (never turn off in production).
    verify_tls: bool = True
    shutdown_grace_s: float = 20.0
    #: Who sends (see :class:`DeliveryMode`).
    mode: DeliveryMode = DeliveryMode.AUTO
    #: A VICIdial attempt logged in vicidial_url_log without its result this long: failed.
    vicidial_attempt_timeout_s: float = 60.0
    #: Send ``Idempotency-Key`` and ``webhook-id`` (stable per lead and endpoint).
    idempotency_headers: bool = True
    #: The ``[delivery.retry]`` table.
    retry: RetryPolicy = RetryPolicy()
    #: Consecutive failures that open an endpoint's circuit breaker.
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    breaker_max_cooldown_s: float = 600.0

    def limits_for(self, endpoint_id: str, origin: str) -> EndpointLimits:
        return self.endpoints.get(endpoint_id) or self.endpoints.get(origin) or self.defaults

    def __post_init__(self) -> None:
        # A plain string given in code (tests, bench) becomes the enum, so ``is`` holds.
        object.__setattr__(self, "mode", DeliveryMode(self.mode))


@dataclass(frozen=True, slots=True)
class UrlsConfig:
    """URLs defined in the config file, for builds without VICIdial's own setting."""

    system: str | None = None
    lists: Mapping[int, str] = field(default_factory=dict)


class LogLevel(enum.StrEnum):
    """``[log] level``, in any case (``debug`` is DEBUG)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"

    @classmethod
    def _missing_(cls, value: object) -> LogLevel | None:
        return cls.__members__.get(value.upper()) if isinstance(value, str) else None


class LogFormat(enum.StrEnum):
    """``[log] format``."""

    JSON = "json"  # one JSON object a line (cdc.logs.JsonFormatter)
    TEXT = "text"  # time, level, logger, message


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: LogLevel = LogLevel.INFO
    format: LogFormat = LogFormat.JSON

    def __post_init__(self) -> None:
        # Plain strings given in code become the enums.
        object.__setattr__(self, "level", LogLevel(self.level))
        object.__setattr__(self, "format", LogFormat(self.format))


@dataclass(frozen=True, slots=True)
class Config:
    mysql: MysqlConfig = MysqlConfig()
    reader: ReaderConfig = ReaderConfig()
    state: StateConfig = StateConfig()
    http: HttpConfig = HttpConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    urls: UrlsConfig = UrlsConfig()
    log: LogConfig = LogConfig()
    hooks: HooksConfig = field(default_factory=HooksConfig)
