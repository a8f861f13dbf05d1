"""Small test helpers: bounded waits, a SQL-only view of the binlog, dead letters of a state file."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pathlib import Path

    from cdc.store import DeliveryRecord
    from cdc.testing.mariadb import PrivateMariaDB

T = TypeVar("T")
#: What the ``mariadb_factory`` fixture yields: ``start(charset=..., row_metadata=..., **kwargs)``.
MariaDBFactory = Callable[..., "PrivateMariaDB"]

_TABLE_MAP = re.compile(r"table_id: (\d+) \(([^.]+)\.([^)]+)\)")
_ROWS_TABLE_ID = re.compile(r"table_id: (\d+)")
_ROWS_EVENTS = {"Write_rows_v1": "insert", "Update_rows_v1": "update", "Delete_rows_v1": "delete"}


def _describe(predicate: object, message: str) -> str:
    return message or getattr(predicate, "__name__", repr(predicate))


def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05, *, message: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not true within {timeout_s:g} s: {_describe(predicate, message)} (last value: {value!r})"
            )
        time.sleep(interval_s)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float,
    interval_s: float = 0.05,
    *,
    message: str = "",
) -> T:
    """``wait_until`` for asyncio tests: sleeps without blocking the loop; may await the predicate."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"not true within {timeout_s:g} s: {_describe(predicate, message)} (last value: {value!r})"
            )
        await asyncio.sleep(interval_s)


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


def dead_letters(state: Path, **selector: Any) -> list[DeliveryRecord]:
    """Dead letters in a state file (``list_dead`` filters), read on a connection of the test's own.

    A running service's store is one connection owned by its worker thread: a test must
    not call it from another thread while the service uses it.
    """
    from cdc.store import SqliteStore

    store = SqliteStore(state)
    store.open()
    try:
        return store.list_dead(**selector)
    finally:
        store.close()
