"""Recorded binlog files through the raw source, with no server (the framing tests' entry point).

:func:`read_recorded` wraps recorded events in replication packets and feeds them to
:meth:`cdc.reader.raw.RawSource.read` exactly as a socket would (reads of
``chunk_bytes``, so packets split across reads), collecting what the source hands over.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence

from ..config import MysqlConfig
from ..records import Position, SourceItem
from .framing import BINLOG_MAGIC, RecordedPackets, packets
from .raw import CHUNK_BYTES, RawSource
from .schema import SchemaCache, TableSchemas, WatchedTables
from .schemahistory import ColumnInfo
from .source import Feed
from .unreadable import UnreadableTables

__all__ = ["read_recorded"]


def read_recorded(
    events: Iterable[bytes],
    columns: Mapping[str, Sequence[ColumnInfo]],
    *,
    file: str,
    database: str = "asterisk",
    tables: Iterable[str] = (),
    chunk_bytes: int = CHUNK_BYTES,
) -> list[SourceItem]:
    """What the raw source hands over for recorded events, with no server.

    The events go through the source's own path (:meth:`cdc.reader.raw.RawSource.read`):
    replication packet framing, checksum checks, table maps, row decoding, group ends.
    ``columns`` stands in for ``information_schema``: a binlog written with
    ``binlog_row_metadata=NO_LOG`` names no column. Raises what the reader would
    (``ReaderFaultError`` on a bad checksum).
    """
    mysql = MysqlConfig(database=database)
    start = Position(file, len(BINLOG_MAGIC))
    schemas = TableSchemas(database, WatchedTables(tables), _NoServer(mysql))
    schemas.remember([(table, start, tuple(cols)) for table, cols in columns.items()])
    items: list[SourceItem] = []

    def collect(batch: list[SourceItem]) -> bool:
        items.extend(batch)
        return True

    # Hand over at every read (no linger, no flush interval): nothing waits for a next read.
    feed = Feed(
        mysql, schemas, UnreadableTables(database, mysql.user, 60.0), start, collect, flush_interval_s=0.0
    )
    stream = b"".join(packets(b"\x00" + event) for event in events)
    with contextlib.suppress(ConnectionError):  # the end of the recording
        RawSource(linger_s=0.0).read(RecordedPackets(stream, chunk_bytes), feed)
    return items


class _NoServer(SchemaCache):
    """No ``information_schema`` behind a recording: a table without columns is ambiguous."""

    def load(self, tables: Iterable[str]) -> dict[str, tuple[ColumnInfo, ...]]:
        return {}
