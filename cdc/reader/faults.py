"""Reader errors told apart: what reconnecting heals and what it never will.

:func:`classify` maps what ended a binlog connection to a :class:`ReaderFault`;
``CONNECTION`` (network, server restart) is retried with backoff and counted by
:class:`TransientCause`; every other kind is a fault: the reader stops retrying fast,
reports a :class:`FaultReport` (log line with the cause and the exact fix,
``/readyz`` reason, ``/status``, ``vicidial_cdc_reader_errors_total{kind}``) and
re-checks at a slow interval, so a fix made on the database server (a GRANT, a
``my.cnf`` line and a restart) heals it without restarting the streamer.
Pure: no I/O.
"""

from __future__ import annotations

import enum
import re
import socket
import struct
from dataclasses import dataclass

import pymysql

from ..errors import BinlogPurgedError, ReaderFault, ReaderFaultError, SourceError
from ..records import Position
from .rowdecode import UnsupportedColumnError

#: Seconds between re-checks while a fault stands (``reader.fault_recheck_s``).
FAULT_RECHECK_S = 60.0

_ACCESS_DENIED = frozenset({1045, 1227, 1044, 1698})  # login, REPLICATION privileges, database, plugin
_TABLE_DENIED = frozenset({1142, 1143})  # command / column denied for a table
_MASTER_FATAL = 1236
_NO_BINARY_LOGGING = 1381  # log_bin is off after a restart
_SHUTDOWN = frozenset({1053, 1927, 1317, 2013, 2006, 2055})
_REFUSED = frozenset({2003, 2002, 1040, 1129})
_USER_AT_HOST = re.compile(r"user '([^']*)'@'([^']*)'")


class TransientCause(enum.StrEnum):
    """Why a connection ended when reconnecting heals it (the ``cause`` label)."""

    SERVER_GONE = "server_gone"  # lost mid-stream, server shut down or restarting
    REFUSED = "refused"  # cannot connect: down, too many connections, host blocked
    TIMEOUT = "timeout"  # no packet within mysql.read_timeout_s
    CLOSED = "closed"  # the server ended the stream (EOF, socket closed)
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class FaultReport:
    """A standing reader fault, as ``/status`` shows it."""

    kind: ReaderFault
    #: The cause and the exact fix (no row values, no secrets).
    message: str
    #: Wall-clock time the fault was first seen (unchanged by re-checks of the same kind).
    since: float
    #: The resume position the reader waits at.
    position: str


def _code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return int(exc.args[0])
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 8:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def classify(exc: BaseException) -> ReaderFault:
    """The kind of what ended the connection (its cause chain is looked at too)."""
    for err in _chain(exc):
        if isinstance(err, ReaderFaultError):
            return err.kind
        if isinstance(err, BinlogPurgedError):
            return ReaderFault.BINLOG_PURGED
        if isinstance(err, UnsupportedColumnError):
            return ReaderFault.UNSUPPORTED_COLUMN
        code = _code(err)
        if code in _ACCESS_DENIED:
            return ReaderFault.ACCESS_DENIED
        if code in _TABLE_DENIED:
            return ReaderFault.TABLE_UNREADABLE
        if code == _MASTER_FATAL:
            return ReaderFault.BINLOG_FATAL
        if code == _NO_BINARY_LOGGING:
            return ReaderFault.BINLOG_SETTINGS
        if code is not None:
            return ReaderFault.CONNECTION
        if isinstance(err, (struct.error, IndexError, UnicodeError)):
            return ReaderFault.MALFORMED_EVENT
    if isinstance(exc, (OSError, SourceError, pymysql.MySQLError)):
        return ReaderFault.CONNECTION
    # Anything else came out of parsing an event (a ValueError, KeyError, ...): re-reading
    # the same bytes fails the same way, so it is not retried fast.
    return ReaderFault.MALFORMED_EVENT


def transient_cause(exc: BaseException) -> TransientCause:
    for err in _chain(exc):
        code = _code(err)
        if code in _SHUTDOWN:
            return TransientCause.SERVER_GONE
        if code in _REFUSED or isinstance(err, ConnectionRefusedError):
            return TransientCause.REFUSED
        if isinstance(err, (TimeoutError, socket.timeout)):
            return TransientCause.TIMEOUT
        if isinstance(err, (ConnectionError, EOFError)):
            return TransientCause.CLOSED
    return TransientCause.OTHER


def error_text(exc: BaseException) -> str:
    """The error's own message, one line (server messages name no row values)."""
    if isinstance(exc, pymysql.MySQLError) and exc.args:
        text = f"({exc.args[0]}) {exc.args[-1]}" if len(exc.args) > 1 else str(exc.args[0])
    elif isinstance(exc, SourceError):
        return " ".join(str(exc).split())  # ours: written to be shown whole
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:500]


def _account(exc: BaseException, user: str) -> str:
    for err in _chain(exc):
        m = _USER_AT_HOST.search(error_text(err))
        if m is not None:
            return f"'{m[1]}'@'{m[2]}'"
    return f"'{user}'@'<this host>'"


def explain(
    kind: ReaderFault, exc: BaseException, *, user: str, database: str, position: Position | None
) -> str:
    """The cause and the exact fix, for the log line and ``/status``."""
    cause = error_text(exc)
    at = f" at {position}" if position is not None else ""
    account = _account(exc, user)
    if kind is ReaderFault.ACCESS_DENIED:
        return (
            f"the server refuses the replication account: {cause}. Fix on the database server: "
            f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO {account}; (MariaDB 10.5+: "
            "BINLOG MONITOR instead of REPLICATION CLIENT), or correct [mysql] user / the password. "
            "The streamer re-checks every reader.fault_recheck_s and resumes by itself"
        )
    if kind is ReaderFault.TABLE_UNREADABLE:
        return (
            f"a watched table cannot be read{at}: {cause}. Fix: GRANT SELECT ON `{database}`.* TO {account}; "
            "(or GRANT SELECT on that table), or set binlog_row_metadata=FULL in my.cnf so the binlog "
            "carries the column names. The streamer re-checks every reader.fault_recheck_s and "
            "resumes by itself"
        )
    if kind is ReaderFault.UNSUPPORTED_COLUMN:
        return (
            f"a watched table has a column type this reader does not decode{at}: {cause}. Fix: set "
            'reader.decoder = "library" in the config and restart, and report the column type'
        )
    if kind is ReaderFault.COMPRESSED_EVENTS:
        return (
            f"the binlog holds compressed events{at}, which cannot be read: {cause}. Fix in my.cnf: "
            "log_bin_compress = OFF (MariaDB) or binlog_transaction_compression = OFF (MySQL 8), restart the "
            "server; events already compressed stay unreadable: after the restart run "
            "'vicidial-cdc replay --since <time of the last delivered lead>' and "
            "'vicidial-cdc run --start current'"
        )
    if kind is ReaderFault.BINLOG_FATAL:
        return (
            f"the server cannot send the binlog from the checkpoint{at}: {cause}. Check that [mysql] "
            "points at the server the state follows and that its binlog is intact (mysqlbinlog on that "
            "file); to go on from a known place: 'vicidial-cdc replay --since <time of the last "
            "delivered lead>' then 'vicidial-cdc run --start current'"
        )
    if kind is ReaderFault.MALFORMED_EVENT:
        return (
            f"a binlog event does not parse{at}: {cause}. The reader re-reads it every "
            "reader.fault_recheck_s (a transfer error heals); if it stays, inspect it with "
            "'mysqlbinlog --start-position' at that position, report it, and try "
            'reader.decoder = "library"'
        )
    if kind is ReaderFault.SCHEMA_AMBIGUOUS:
        return (
            f"a row image cannot be decoded with certainty{at}: {cause}. Fix: binlog_row_metadata = FULL in "
            "my.cnf (MariaDB 10.5+ / MySQL 8.0.1+) for new events; for these, start after them with "
            "'vicidial-cdc run --start FILE:POS' and replay the leads in between"
        )
    if kind is ReaderFault.BINLOG_SETTINGS:
        return (
            f"the server's binlog settings changed: {cause}. Fix in my.cnf: log_bin, binlog_format = ROW "
            "and binlog_row_image = FULL, restart the server, then replay what was written meanwhile "
            "('vicidial-cdc replay --since <time of the restart>'). The streamer re-checks every "
            "reader.fault_recheck_s"
        )
    return cause
