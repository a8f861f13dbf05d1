"""Binlog positions on the server: where to start, and whether a checkpoint can still be read.

SHOW BINARY LOGS / SHOW MASTER STATUS on a control connection (:mod:`cdc.reader.connection`),
and the one message that says what to do when the checkpoint's file is purged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pymysql

from ..errors import BinlogPurgedError, SourceError
from ..records import Position

__all__ = [
    "check_position_available",
    "current_position",
    "is_purged",
    "purged_message",
    "resolve_start",
    "server_binlogs",
]

#: The server cannot send the binlog from the requested place (a purged file among others).
_ER_MASTER_FATAL_READING_BINLOG = 1236


def server_binlogs(conn: pymysql.Connection[Any]) -> list[tuple[str, int]]:
    """The binlog files the server has, oldest first, with their sizes."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        return [(str(r[0]), int(r[1])) for r in cur.fetchall()]


def current_position(conn: pymysql.Connection[Any]) -> Position:
    """Where the server writes now (``SHOW MASTER STATUS``)."""
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    if row is None:
        raise SourceError(
            "the server has no binary log (log_bin=OFF): enable log_bin, binlog_format=ROW, "
            "binlog_row_image=FULL in my.cnf and restart MariaDB"
        )
    return Position(str(row[0]), int(row[1]))


def resolve_start(conn: pymysql.Connection[Any], start: Position | str) -> Position | str:
    """Turn ``current``/``earliest`` into a position; GTIDs pass through."""
    if start == "current":
        return current_position(conn)
    if start == "earliest":
        logs = server_binlogs(conn)
        if not logs:
            return current_position(conn)
        return Position(logs[0][0], 4)
    return start


def check_position_available(conn: pymysql.Connection[Any], position: Position) -> None:
    """Raise :class:`BinlogPurgedError` when the checkpoint's file is gone."""
    names = [name for name, _ in server_binlogs(conn)]
    if position.file not in names:
        raise BinlogPurgedError(purged_message(position, names))


def purged_message(position: Position, names: Iterable[str] = ()) -> str:
    """What was lost, the oldest file left, and the two commands that recover."""
    have = list(names)
    oldest = f" (oldest on the server: {have[0]})" if have else ""
    return (
        f"binlog file {position.file} (checkpoint {position}) is no longer on the server"
        f"{oldest}: leads written since then cannot be read from the binlog. Recover with "
        "'vicidial-cdc replay --since <time of the last delivered lead>' and then "
        "'vicidial-cdc run --start current'; raise binlog retention (expire_logs_days / "
        "binlog_expire_logs_seconds) so it does not happen again"
    )


def is_purged(exc: pymysql.MySQLError) -> bool:
    """True when the server refused the dump because the requested file is gone."""
    code = exc.args[0] if exc.args else None
    text = str(exc.args[-1]) if exc.args else ""
    return code == _ER_MASTER_FATAL_READING_BINLOG and (
        "first log file name" in text or "purged" in text or "not find" in text.lower()
    )
