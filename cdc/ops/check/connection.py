"""The connection's own checks: why it failed (with what to check), and whether it is encrypted."""

from __future__ import annotations

import ipaddress
import ssl

import pymysql

from ...config import MysqlConfig, SslMode, tls_warnings
from ...errors import SourceError
from .facts import ServerFacts
from .grants import account_sql, least_privilege_grants
from .results import MY_CNF, CheckResult, Status

__all__ = ["check_tls", "connect_failure"]

_ER_ACCESS_DENIED = 1045
_ER_HOST_NOT_PRIVILEGED = 1130
_CR_CONNECTION_ERRORS = frozenset({2002, 2003, 2005, 2006, 2013})
_CR_SSL_REQUIRED = 2026  # TLS required by ssl_mode, not offered by the server


def connect_failure(mysql: MysqlConfig, exc: SourceError) -> CheckResult:
    """The FAIL line for a connection that could not be made, with what to check."""
    cause = exc.__cause__
    code = cause.args[0] if isinstance(cause, pymysql.MySQLError) and cause.args else 0
    account = account_sql(f"{mysql.user}@<this host>")
    if code == _ER_ACCESS_DENIED:
        fix = (
            "check [mysql] user (env VICIDIAL_CDC_MYSQL_USER) and the password "
            "(env VICIDIAL_CDC_MYSQL_PASSWORD or [mysql] password_file); to create the account:\n"
            f"CREATE USER {account} IDENTIFIED BY '<password>';\n"
            + "\n".join(least_privilege_grants(account, mysql.database))
        )
    elif isinstance(getattr(cause, "original_exception", None), ssl.SSLError) or code == _CR_SSL_REQUIRED:
        fix = (
            "TLS: [mysql] ssl_ca must be the CA that signed the server's certificate (ssl_cert in the "
            "server's my.cnf), the certificate must name [mysql] host, and the server must have TLS on "
            "(SHOW VARIABLES LIKE 'have_ssl': YES); see the README, \"TLS to MySQL\""
        )
    elif code == _ER_HOST_NOT_PRIVILEGED:
        fix = (
            f"the server has no account {mysql.user!r} for the host the streamer connects from: "
            f"CREATE USER {account} (or grant to '{mysql.user}'@'%')"
        )
    elif code in _CR_CONNECTION_ERRORS:
        fix = (
            f"check [mysql] host and port (env VICIDIAL_CDC_MYSQL_HOST, VICIDIAL_CDC_MYSQL_PORT): MariaDB "
            f"must listen on TCP at {mysql.host}:{mysql.port} (my.cnf: bind-address, no skip-networking) "
            "and the firewall must let this host in"
        )
    else:
        fix = "check the [mysql] settings of the config file and that MariaDB is running"
    return CheckResult("connect", Status.FAIL, str(exc), fix)


_LOOPBACK_HOSTS = frozenset({"localhost", "::1"})
_TLS_FIX = (
    f"on the server, {MY_CNF}\n    ssl_cert = /etc/mysql/tls/server.pem\n"
    "    ssl_key  = /etc/mysql/tls/server.key\n    ssl_ca   = /etc/mysql/tls/ca.pem\n"
    'and in this config file, [mysql]:\n    ssl_ca = "/etc/vicidial-cdc/mysql-ca.pem"   '
    "# ssl_mode is then verify_identity"
)


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tls(facts: ServerFacts, mysql: MysqlConfig) -> list[CheckResult]:
    """Whether this session is encrypted (``Ssl_cipher``) and the server verified; key file mode."""
    mode = mysql.tls_mode
    local = _is_loopback(mysql.host)
    if not facts.ssl_cipher:
        if local:
            result = CheckResult(
                "tls", Status.OK, f"not encrypted (ssl_mode {mode.value}): {mysql.host} is this host"
            )
        else:
            result = CheckResult(
                "tls",
                Status.WARN,
                f"not encrypted (ssl_mode {mode.value}): the binlog, with leads and password hashes, "
                f"crosses the network to {mysql.host} in plaintext",
                _TLS_FIX,
            )
    else:
        verified = {
            SslMode.VERIFY_IDENTITY: "server certificate and name verified",
            SslMode.VERIFY_CA: "server certificate verified, not its name",
        }.get(mode, "server not verified")
        encrypted = f"encrypted ({facts.ssl_version or 'TLS'}, {facts.ssl_cipher}), {verified}"
        if mode in (SslMode.VERIFY_IDENTITY, SslMode.VERIFY_CA) or local:
            result = CheckResult("tls", Status.OK, f"{encrypted} (ssl_mode {mode.value})")
        else:
            result = CheckResult(
                "tls",
                Status.WARN,
                f"{encrypted} (ssl_mode {mode.value}): anyone on the path to {mysql.host} can pose as the "
                "server and read the binlog",
                'in this config file, [mysql]: ssl_ca = "<the CA that signed the server\'s certificate>" '
                'and ssl_mode = "verify_identity" (or leave ssl_mode out)',
            )
    results = [result]
    results.extend(
        CheckResult("tls.key", Status.WARN, warning, f"chmod 600 {mysql.ssl_key}")
        for warning in tls_warnings(mysql)
    )
    return results
