"""Connections to the VICIdial database server: one set of PyMySQL settings, one error text.

Every connection the streamer makes (both binlog sources, the schema reads of the
reader thread, the service's SELECTs, ``check``, ``replay``) is built from
:func:`connection_settings`, so TLS and timeouts are the same everywhere; a refused
connection is explained once, by :func:`connect_error`.
"""

from __future__ import annotations

import ssl
from typing import Any

import pymysql

from ..config import MysqlConfig, SslMode
from ..errors import SourceError

__all__ = ["connect", "connect_error", "connection_settings"]


def connect(mysql: MysqlConfig, **extra: Any) -> pymysql.Connection[Any]:
    """A plain control connection to the VICIdial database server (TLS as configured)."""
    try:
        return pymysql.connect(**connection_settings(mysql), **extra)
    except pymysql.MySQLError as exc:
        raise SourceError(connect_error(mysql, exc)) from exc


#: PyMySQL's code for "TLS required but the server does not offer it".
_CR_SSL_CONNECTION_ERROR = 2026


def connect_error(mysql: MysqlConfig, exc: pymysql.MySQLError) -> str:
    """Why a connection failed and what to change; TLS refusals get their own fix."""
    where = f"MySQL {mysql.host}:{mysql.port}"
    cause = getattr(exc, "original_exception", None)
    code = exc.args[0] if exc.args else 0
    if isinstance(cause, ssl.SSLCertVerificationError):
        reason = cause.verify_message or str(cause)
        if "mismatch" in reason:
            fix = (
                f"the certificate does not name {mysql.host!r}: set [mysql] host to a name or "
                "address the certificate carries (its subjectAltName), or reissue it"
            )
        else:
            fix = "set [mysql] ssl_ca to the PEM file of the CA that signed the server's certificate"
        return f"TLS: {where} presented a certificate that was refused ({reason}): {fix}"
    if isinstance(cause, ssl.SSLError):
        return (
            f"TLS handshake with {where} failed ({cause.reason or cause}): check the server's "
            "ssl_cert/ssl_key and, for accounts REQUIRE X509, [mysql] ssl_cert and ssl_key"
        )
    if code == _CR_SSL_CONNECTION_ERROR:
        return (
            f"TLS: {where} does not offer TLS, and [mysql] ssl_mode = {mysql.tls_mode.value} refuses "
            "plaintext: turn TLS on in the server (my.cnf [mariadb] ssl_cert, ssl_key, ssl_ca; "
            "SHOW VARIABLES LIKE 'have_ssl' must say YES)"
        )
    return (
        f"cannot connect to {where} as {mysql.user}: {exc.args[-1]}; "
        "check [mysql] host/port/user and the password"
    )


def connection_settings(mysql: MysqlConfig) -> dict[str, Any]:
    """PyMySQL's keyword arguments for every connection to the server (both readers')."""
    settings: dict[str, Any] = {
        "host": mysql.host,
        "port": mysql.port,
        "user": mysql.user,
        "password": mysql.password.value,
        "connect_timeout": mysql.connect_timeout_s,
        "read_timeout": mysql.read_timeout_s,
        "write_timeout": mysql.read_timeout_s,
        "charset": "utf8mb4",
    }
    mode = mysql.tls_mode
    if mode is SslMode.DISABLED:
        settings["ssl_disabled"] = True
    elif mode is not SslMode.PREFERRED:  # preferred: PyMySQL's own default
        try:
            # An SSLContext makes PyMySQL refuse a server without TLS (no plaintext fallback).
            settings["ssl"] = mysql.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(
                f"cannot use the TLS files of [mysql] (ssl_ca, ssl_cert, ssl_key): {exc}"
            ) from exc
    return settings
