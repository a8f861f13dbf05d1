"""Configuration: one TOML file plus ``VICIDIAL_CDC_<SECTION>_<KEY>`` env overrides.

Loaded once into frozen dataclasses; unknown keys are an error. Secrets (the MySQL
password, endpoint headers and signing secrets) come only from the environment or a
file and are redacted in ``repr``.

- :mod:`~cdc.config.sections`: the typed sections, their defaults and the enums;
- :mod:`~cdc.config.values`: one section from its table and its env variables;
- :mod:`~cdc.config.fanout`: ``[endpoints.NAME]`` and ``[fanout]``, with their secrets;
- :mod:`~cdc.config.validation`: every value against what it may be;
- :mod:`~cdc.config.loading`: :func:`load`, which runs them in that order.
"""

from __future__ import annotations

from .loading import load
from .sections import (
    DECODERS,
    DEFAULT_SERVER_ID,
    VICIDIAL_ENDPOINT,
    Config,
    Decoder,
    DeliveryConfig,
    DeliveryMode,
    EndpointConfig,
    EndpointHeaders,
    EndpointLimits,
    FanoutConfig,
    Format,
    HttpConfig,
    LogConfig,
    LogFormat,
    LogLevel,
    MysqlConfig,
    ReaderConfig,
    RetryPolicy,
    Secret,
    SslMode,
    StateConfig,
    UrlsConfig,
)
from .validation import is_ip_address, parse_start, tls_warnings, validate
from .values import ENV_PREFIX

__all__ = [
    "DECODERS",
    "DEFAULT_SERVER_ID",
    "ENV_PREFIX",
    "VICIDIAL_ENDPOINT",
    "Config",
    "Decoder",
    "DeliveryConfig",
    "DeliveryMode",
    "EndpointConfig",
    "EndpointHeaders",
    "EndpointLimits",
    "FanoutConfig",
    "Format",
    "HttpConfig",
    "LogConfig",
    "LogFormat",
    "LogLevel",
    "MysqlConfig",
    "ReaderConfig",
    "RetryPolicy",
    "Secret",
    "SslMode",
    "StateConfig",
    "UrlsConfig",
    "is_ip_address",
    "load",
    "parse_start",
    "tls_warnings",
    "validate",
]
