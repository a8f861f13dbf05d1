"""A SQL-only view of the binlog (``SHOW MASTER STATUS``, ``SHOW BINLOG EVENTS``), to check
what the simulator wrote without the code under test."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

from cdc.records import Position
from cdc.testing.mariadb import PrivateMariaDB

_TABLE_MAP = re.compile(r"table_id: (\d+) \(([^.]+)\.([^)]+)\)")
_ROWS_TABLE_ID = re.compile(r"table_id: (\d+)")
_ROWS_EVENTS = {"Write_rows_v1": "insert", "Update_rows_v1": "update", "Delete_rows_v1": "delete"}


@dataclass(frozen=True, slots=True)
class BinlogMark:
    """A binlog position taken with ``SHOW MASTER STATUS``."""

    file: str
    pos: int


@dataclass(frozen=True, slots=True)
class RowsEvent:
    """One rows event read back with ``SHOW BINLOG EVENTS``."""

    op: str  # insert | update | delete
    schema: str
    table: str
    #: The statement text from the group's Annotate_rows event.
    sql: str
    #: Event types of the whole group, from GTID to its end.
    group: tuple[str, ...]


def binlog_mark(conn: Any) -> BinlogMark:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    return BinlogMark(str(row[0]), int(row[1]))


def binlog_events(conn: Any, since: BinlogMark) -> list[tuple[str, str]]:
    """(event_type, info) of every event after ``since``, across binlog rotations."""
    with conn.cursor() as cur:
        cur.execute("SHOW BINARY LOGS")
        files = [str(row[0]) for row in cur.fetchall()]
        events: list[tuple[str, str]] = []
        for name in files[files.index(since.file) :]:
            if name == since.file:
                cur.execute("SHOW BINLOG EVENTS IN %s FROM %s", (name, since.pos))
            else:
                cur.execute("SHOW BINLOG EVENTS IN %s", (name,))
            events.extend((str(row[2]), str(row[5])) for row in cur.fetchall())
    return events


def rows_events(conn: Any, since: BinlogMark, schema: str | None = None) -> list[RowsEvent]:
    """The rows events after ``since`` (optionally of one schema), in binlog order."""
    tables: dict[str, tuple[str, str]] = {}
    out: list[RowsEvent] = []
    group: list[str] = []
    pending: list[tuple[str, str, str, str]] = []
    annotate = ""
    for kind, info in binlog_events(conn, since):
        if kind == "Gtid":
            group, pending, annotate = [], [], ""
        group.append(kind)
        if kind == "Annotate_rows":
            annotate = info
        elif kind == "Table_map":
            match = _TABLE_MAP.search(info)
            if match:
                tables[match.group(1)] = (match.group(2), match.group(3))
        elif kind in _ROWS_EVENTS:
            match = _ROWS_TABLE_ID.search(info)
            db, table = tables.get(match.group(1) if match else "", ("", ""))
            pending.append((_ROWS_EVENTS[kind], db, table, annotate))
        elif kind in ("Query", "Xid") and pending:
            for op, db, table, sql in pending:
                if schema is None or db == schema:
                    out.append(RowsEvent(op, db, table, sql, tuple(group)))
            pending = []
    return out


def position(conn_or_server: Any) -> Position:
    """The server's current binlog position (``SHOW MASTER STATUS``) on a connection or a server."""
    if isinstance(conn_or_server, PrivateMariaDB):
        with contextlib.closing(conn_or_server.connect()) as conn:
            return position(conn)
    mark = binlog_mark(conn_or_server)
    return Position(mark.file, mark.pos)
