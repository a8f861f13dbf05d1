"""The library source: binlog events decoded by ``mysql-replication``.

``mysql-replication`` does the protocol (handshake, dump command, framing, row
decoding); :class:`LibrarySource` decides what to decode and turns its events into our
records, through the :class:`cdc.reader.groups.GroupAssembler`: ``RowChange`` for
watched tables, ``GroupEnd`` at every event-group end (the ``COMMIT`` Query event of
MyISAM groups, ``Xid`` for InnoDB, a DDL statement), ``SchemaChange`` for DDL on a
watched table. It is the reference the raw source is compared with (the differential
test), and the fallback (``reader.decoder = "library"``).

Column names, signedness, ENUM labels and charsets are taken from the binlog when the
server logs ``binlog_row_metadata=FULL`` and from the schema history otherwise
(:class:`cdc.reader.schema.TableSchemas`). Text is decoded with the column's charset,
losslessly: bytes that do not decode survive as surrogate escapes and are reported,
never dropped.

The library reconnects by itself after a lost connection, at the last *event* it
read, which can fall between a table map and its rows, whose rows it then skips
silently. We refuse that reconnect (see ``_GuardedConnect``) and resume from the last
group end handed over instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from .. import charset
from ..records import Op, Position, UnreadableRows, Value, has_undecodable
from . import replication
from .connection import connection_settings
from .groups import GroupAssembler, Row, gtid_text
from .schemahistory import ColumnInfo
from .source import Feed
from .unreadable import UNREADABLE_REASON

__all__ = ["LibrarySource", "normalize"]

log = logging.getLogger(__name__)

_TEXT_TYPES = frozenset({FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.BLOB})
#: What the library's ``None`` means for a non-NULL value (zero dates, empty SETs).
_NONE_AS_TEXT = {
    "set": "",
    "date": "0000-00-00",
    "datetime": "0000-00-00 00:00:00",
    "timestamp": "0000-00-00 00:00:00",
}
_ROWS_EVENTS = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)


class _Reconnect(ConnectionError):
    """The library tried to reconnect by itself; we resume from the last group end."""


class _GuardedConnect:
    """``pymysql_wrapper`` that allows one stream connection per stream reader."""

    def __init__(self) -> None:
        self.stream_connects = 0

    def __call__(self, **settings: Any) -> pymysql.Connection[Any]:
        if "db" in settings:  # the library's control connection names a database
            settings["database"] = settings.pop("db")
        else:
            self.stream_connects += 1
            if self.stream_connects > 1:
                raise _Reconnect
        return pymysql.connect(**settings)


class LibrarySource:
    """Reads through ``mysql-replication``'s ``BinLogStreamReader``."""

    #: A compressed event is skipped by the library without a word: compression on the
    #: server is a fault for this source (checked before each connection).
    sees_compressed_events = False

    def follow(self, feed: Feed) -> None:
        stream = self._open(feed)
        try:
            self._read(stream, feed)
        finally:
            stream.close()

    def _open(self, feed: Feed) -> BinLogStreamReader:
        mysql = feed.mysql
        common: dict[str, Any] = {
            "connection_settings": connection_settings(mysql),
            "server_id": mysql.server_id,
            "blocking": True,
            "only_events": [
                WriteRowsEvent,
                UpdateRowsEvent,
                DeleteRowsEvent,
                TableMapEvent,
                QueryEvent,
                XidEvent,
                RotateEvent,
                HeartbeatLogEvent,
                MariadbGtidEvent,
                GtidEvent,
            ],
            "only_schemas": [mysql.database],
            "only_tables": feed.tables,
            "freeze_schema": True,
            "slave_heartbeat": replication.heartbeat_period_s(mysql),
            "pymysql_wrapper": _GuardedConnect(),
        }
        resume = feed.resume
        if isinstance(resume, Position):
            return BinLogStreamReader(log_file=resume.file, log_pos=resume.pos, resume_stream=True, **common)
        return BinLogStreamReader(is_mariadb=True, auto_position=resume, **common)

    def _read(self, stream: BinLogStreamReader, feed: Feed) -> None:
        stats = feed.stats
        stop = feed.stop
        unreadable = feed.unreadable
        group = GroupAssembler(feed.resume.file if isinstance(feed.resume, Position) else "")
        last_flush = time.monotonic()
        while not stop.is_set():
            event = stream.fetchone()
            if event is None:
                raise _Reconnect
            feed.connected()
            now_mono = time.monotonic()
            stats.events += 1
            ended = False
            if isinstance(event, TableMapEvent):
                _enrich(feed, event, stream.log_file)
                continue
            if isinstance(event, _ROWS_EVENTS):
                if unreadable and unreadable.retry_due(event.table, now_mono):
                    # The library yields a table map once per table id: try again here.
                    _enrich(feed, event, stream.log_file)
                group.file = stream.log_file
                _add_rows(feed, group, event, stream.log_file)
                stats.last_event_ts = event.timestamp
                stats.last_event_monotonic = now_mono
                stats.last_event_wall = time.time()
                continue
            if isinstance(event, HeartbeatLogEvent):
                stats.last_heartbeat_monotonic = now_mono
                feed.progress(caught_up=True)
            elif isinstance(event, (MariadbGtidEvent, GtidEvent)):
                group.begin(str(event.gtid))
            elif isinstance(event, QueryEvent):
                query = event.query if isinstance(event.query, bytes) else str(event.query).encode()
                stats.last_event_ts = event.timestamp
                stats.last_event_monotonic = now_mono
                group.thread = int(event.slave_proxy_id)
                if query != b"BEGIN":
                    group.file = stream.log_file
                    if query != b"COMMIT":
                        schema = (
                            event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema)
                        )
                        position = Position(stream.log_file, stream.log_pos, gtid_text(group.gtid))
                        changes = feed.schemas.schema_changes(schema, query, event.timestamp, position)
                        if changes:
                            group.add(list(changes))
                    group.finish(stream.log_pos, stats.last_event_ts, group.thread)
                    ended = True
            elif isinstance(event, XidEvent):
                stats.last_event_ts = event.timestamp
                stats.last_event_monotonic = now_mono
                group.file = stream.log_file
                group.finish(stream.log_pos, stats.last_event_ts, group.thread)
                ended = True
            elif isinstance(event, RotateEvent):
                stats.binlog_file = str(event.next_binlog)
                had_rows = bool(group.rows)
                group.rotate(
                    str(event.next_binlog),
                    int(event.position),
                    real=event.timestamp != 0,
                    timestamp=stats.last_event_ts,
                )
                ended = event.timestamp != 0 and not had_rows
            if group.pending() and (
                len(group.batch) >= feed.batch_rows
                or (ended and group.has_rows)
                or isinstance(event, HeartbeatLogEvent)
                or now_mono - last_flush >= feed.flush_interval_s
            ):
                if not feed.hand_over(*group.take()):
                    return
                last_flush = now_mono


def _enrich(
    feed: Feed, event: TableMapEvent | WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent, log_file: str
) -> None:
    """Fill what the table map lacks (names, signedness, ENUM labels, charsets).

    From the table's definition when the rows were written (the schema history),
    or by name when the binlog carries names (``binlog_row_metadata=FULL``). A
    ``custom_<list_id>`` table with neither is unreadable (:mod:`cdc.reader.unreadable`):
    its columns are looked up again only every ``unreadable_retry_s``.
    """
    schemas = feed.schemas
    unreadable = feed.unreadable
    columns = event.columns
    full_names = all(c.name for c in columns)
    position = Position(log_file, event.packet.log_pos)
    types = [c.type for c in columns]
    now = time.monotonic()
    found: tuple[ColumnInfo, ...] | None = None
    if event.table not in unreadable or unreadable.retry_due(event.table, now):
        found = schemas.columns_at(event.table, position, types)
        readable = found is not None or full_names or schemas.has(event.table)
        unreadable.update(event.table, readable, now)
    if found is None and not full_names and event.table not in unreadable:
        raise schemas.ambiguous(event.schema, event.table, position, types, event.timestamp)
    info: Sequence[ColumnInfo | None] = found or ()
    if full_names:
        by_name = {c.name: c for c in (found or schemas.columns_now(event.table))}
        info = [by_name.get(c.name) for c in columns]
    for i, col in enumerate(columns):
        ci = info[i] if i < len(info) else None
        if ci is not None and not full_names:
            col.name = ci.name
            col.unsigned = ci.unsigned
        if ci is not None and col.type == FIELD_TYPE.ENUM and not col.enum_values:
            col.enum_values = ["", *ci.enum_labels]
        if col.type in _TEXT_TYPES:
            mysql_cs = (ci.charset if ci is not None else None) or col.character_set_name
            col.character_set_name = charset.lossless_codec(mysql_cs or "binary")
        col.data_type = ci.data_type if ci is not None else ""


def _add_rows(
    feed: Feed,
    group: GroupAssembler,
    event: WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent,
    log_file: str,
) -> None:
    """The rows of one rows event into the open group (counted; unreadable tables as one record)."""
    table = event.table
    columns = event.columns
    if isinstance(event, WriteRowsEvent):
        op = Op.INSERT
    elif isinstance(event, UpdateRowsEvent):
        op = Op.UPDATE
    else:
        op = Op.DELETE
    rows = event.rows
    feed.count_rows(table, op.value, len(rows))
    log_pos = event.packet.log_pos
    if table in feed.unreadable:  # decoded with placeholder names: counted, not handed over
        group.add_unreadable(
            UnreadableRows(
                event.schema,
                table,
                op,
                len(rows),
                UNREADABLE_REASON,
                event.timestamp,
                log_file=log_file,
                log_pos=log_pos,
            )
        )
        return
    report = feed.decode_error
    for row in rows:
        before: dict[str, Value] | None
        after: dict[str, Value] | None
        if op is Op.UPDATE:
            before = normalize(table, row["before_values"], row["before_none_sources"], columns, report)
            after = normalize(table, row["after_values"], row["after_none_sources"], columns, report)
        elif op is Op.INSERT:
            before = None
            after = normalize(table, row["values"], row["none_sources"], columns, report)
        else:
            before = normalize(table, row["values"], row["none_sources"], columns, report)
            after = None
        entry: Row = (event.schema, table, op, before, after, event.timestamp, log_pos)
        group.rows.append(entry)


def normalize(
    table: str,
    values: Mapping[str, Any],
    none_sources: Mapping[str, str],
    columns: Sequence[Any],
    report: Callable[[str, str, Value], None],
) -> dict[str, Value]:
    """One row image of the library as our values: zero dates and empty SETs as text,
    SETs as their labels in definition order; text that did not decode is ``report``-ed
    as ``report(table, column, lead_id)`` and kept (surrogate escapes)."""
    out: dict[str, Value] = {}
    for col in columns:
        name = col.name
        value = values.get(name)
        if value is None:
            if none_sources.get(name, "null") != "null":
                value = _NONE_AS_TEXT.get(getattr(col, "data_type", ""))
        elif isinstance(value, set):
            labels = col.set_values or sorted(value)
            value = ",".join(v for v in labels if v in value)
        elif isinstance(value, str) and has_undecodable(value):
            report(table, name, values.get("lead_id"))
        out[name] = value
    return out
