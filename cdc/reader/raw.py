"""The fast binlog reader: skips the dialer's noise at packet level.

:class:`FastBinlogReader` is a drop-in :class:`cdc.reader.library.BinlogReader` (same
constructor, same loop-side methods, same records, same reconnect and purge rules:
those are inherited). Only the reader thread's ``_stream`` differs.

The connection and the dump request are :mod:`cdc.reader.replication`'s (PyMySQL for the
connection, TLS and the session variables; our own ``COM_BINLOG_DUMP``): ``mysql-replication``
(the library reader's) plays no part. We read the socket ourselves because the
library's per-event path is where its time goes: for every packet it builds a PyMySQL
packet object, a ``BinLogPacketWrapper`` and an event object, and it re-reads each
table map, before a table filter can throw any of it away. A VICIdial binlog is more
than 95 % rows of tables we never look at.

So we frame the replication packets out of large socket reads and, per event, look at
two things only: the event type and, for ``TABLE_MAP`` and rows events, the table id.
A rows event whose table id is not mapped to a watched table is skipped without
building anything. Watched tables get a :class:`cdc.reader.rowdecode.RowDecoder` built once
from their ``TABLE_MAP`` (types and metadata, plus ``information_schema`` when the
server does not log ``binlog_row_metadata=FULL``), cached by the table map's bytes
(its column signature) and dropped when a DDL statement for the table passes by.

Semantics are those of ``cdc.reader.library`` (the differential test compares both readers
value by value): a ``GroupEnd`` at the ``COMMIT`` Query of MyISAM groups, at ``Xid``,
at DDL and at a real rotation; the group's thread id from its Query event; the same
normalized values (:mod:`cdc.reader.rowdecode` lists the three places where the library
loses data and we do not). CRC32 checksums are stripped from every event (per file,
as its FORMAT_DESCRIPTION says) and verified on the events we decode.

What differs is when things happen, not what: batches are handed over per socket
read (at most 64 KB) instead of per group, after a ``linger_s`` pause once the reader
has caught up; a few statistics move per read (event count, last-event clocks); and
the resume position (``_last_end``) moves when a batch is handed over, so a reconnect
never skips rows that were read but not yet handed over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, Protocol

import pymysql

from ..config import MysqlConfig
from ..errors import ReaderFault, ReaderFaultError, SourceError
from ..records import GroupEnd, Op, Position, RowChange, SourceItem, UnreadableRows, Value
from . import replication, rowdecode
from .library import BinlogReader, SchemaCache, always_watched, connection_settings
from .schemahistory import ColumnInfo
from .unreadable import UNREADABLE_REASON

__all__ = ["FastBinlogReader", "file_events", "read_recorded"]

log = logging.getLogger(__name__)

_QUERY: Final = 2
_ROTATE: Final = 4
_FORMAT_DESCRIPTION: Final = 15
_XID: Final = 16
_TABLE_MAP: Final = 19
_HEARTBEAT: Final = 27
_MYSQL_GTID: Final = 33
_MARIADB_GTID: Final = 162
_MYSQL_TRANSACTION_PAYLOAD: Final = 40
_MARIADB_QUERY_COMPRESSED: Final = 165
_MARIADB_ROWS_COMPRESSED: Final = range(166, 172)
_OPS: Final[Mapping[int, Op]] = {
    23: Op.INSERT,
    24: Op.UPDATE,
    25: Op.DELETE,
    30: Op.INSERT,
    31: Op.UPDATE,
    32: Op.DELETE,
}
#: Post-header lengths until the server's FORMAT_DESCRIPTION says otherwise.
_DEFAULT_POST_HEADER: Final = {_QUERY: 13, _TABLE_MAP: 8, 23: 8, 24: 8, 25: 8, 30: 10, 31: 10, 32: 10}
_CHUNK_BYTES: Final = 1 << 16  # socket read size: also bounds the rows one batch holds
_LONG_PACKET: Final = 0xFFFFFF
_CRC_LEN: Final = 4
_DISCARD_BYTES: Final = 1 << 20  # read size while dropping a large event of an unwatched table
#: Events at most this old (server clock) mean the reader follows the server live; a
#: short read then means "caught up" rather than "the server has not sent more yet".
_LIVE_S: Final = 2.0
#: The first bytes of every binlog file.
BINLOG_MAGIC: Final = b"\xfebin"
_EVENT_HEADER: Final = 19

# Little-endian views into an event (offsets from the start of its 19-byte header).
_TABLE_ID = struct.Struct("<IH").unpack_from  # at +19: 6-byte table id
_GTID = struct.Struct("<5xI10xQI").unpack_from  # server_id @5, then seq_no @19, domain @27
#: ts @0, log_pos @13, then the Query post-header: thread @19, db length @27, status length @30
_QUERY_HEAD = struct.Struct("<I9xI2xI4xB2xH").unpack_from
_HEAD = struct.Struct("<I9xI").unpack_from  # ts @0, log_pos @13
_U32 = struct.Struct("<I").unpack_from

#: (file, position, gtid, timestamp, thread id): a group end not yet turned into records.
_End = tuple[str, int, tuple[Any, ...] | None, int, int]
#: One decoded row waiting for its group end: (schema, table, op, before, after, ts, log_pos).
_Row = tuple[str, str, Op, dict[str, Value] | None, dict[str, Value] | None, int, int]


class _Packets(Protocol):
    """Where ``_follow`` reads replication packets: a :class:`cdc.reader.replication.BinlogStream`,
    or a recorded binlog file (:func:`read_recorded`)."""

    @property
    def checksum(self) -> bool: ...

    def read1(self, size: int) -> bytes: ...

    def read(self, size: int) -> bytes: ...


@dataclass(slots=True)
class _State:
    """What the reader thread knows about the stream, shared by the fast and slow paths."""

    file: str
    announced_crc: bool
    crc: int
    post_header: dict[int, int] = field(default_factory=lambda: dict(_DEFAULT_POST_HEADER))
    #: Table ids known to belong to unwatched tables (cleared at each new file).
    skip_ids: set[int] = field(default_factory=set)
    #: Table id -> decoder of a watched table.
    by_id: dict[int, rowdecode.RowDecoder] = field(default_factory=dict)
    gtid: tuple[Any, ...] | None = None
    thread: int = 0
    rows: list[_Row] = field(default_factory=list)
    #: Rows events of unreadable custom tables in the current group (cdc.reader.unreadable).
    unreadable: list[UnreadableRows] = field(default_factory=list)
    end: _End | None = None
    last_ts: int = 0
    batch_end: Position | None = None
    batch_has_rows: bool = False
    heartbeat: bool = False
    #: The watched database and tables, encoded as table maps carry them.
    schema_b: bytes = b""
    tables_b: frozenset[bytes] = frozenset()


class FastBinlogReader(BinlogReader):
    """:class:`cdc.reader.library.BinlogReader` with a reader thread that reads raw packets."""

    _sees_compressed_events = True  # a compressed event of a watched table is a fault (``_event``)

    def __init__(
        self,
        mysql: MysqlConfig,
        tables: Iterable[str],
        start: Position | str,
        *,
        linger_s: float = 0.02,
        **kwargs: Any,
    ) -> None:
        """Arguments as :class:`cdc.reader.library.BinlogReader`, plus ``linger_s``.

        ``linger_s``: once the reader has caught up with the server, it waits this long
        before reading again, so that what a busy dialer writes meanwhile arrives as
        one chunk and one batch. Reading each statement's events as they come costs a
        wake-up per statement here and a commit per batch in the pipeline; the price
        is at most ``linger_s`` of extra latency. While behind (a short read of events
        older than ``_LIVE_S``: a backlog the server streams), it never waits. At 20 ms
        (``bench.run`` live runs, 200 leads/s + 5,000 noise/s) the streamer used a tenth
        less CPU than at 5 ms and its p99 was lower too: fewer, fuller batches.
        """
        super().__init__(mysql, tables, start, **kwargs)
        self._linger_s = linger_s
        #: Decoders by table-map signature (the TABLE_MAP body after the table id).
        self._decoders: dict[bytes, tuple[rowdecode.RowDecoder, tuple[ColumnInfo, ...] | None]] = {}

    # -- reader thread -------------------------------------------------------------

    def _stream(self) -> None:
        self._prepare()
        self._learn_schema()
        start = self._last_end if self._last_end is not None else self._gtid_start
        assert start is not None
        try:
            with replication.open_stream(connection_settings(self._mysql), self._mysql, start) as stream:
                self._follow(stream)
        finally:
            self._stats.connected = False

    def _follow(self, stream: _Packets) -> None:
        """Read packets until stopped; raises what ends the connection."""
        read1 = stream.read1
        read = stream.read
        stats = self._stats
        stop = self._stop
        st = _State(
            file=self._last_end.file if self._last_end is not None else "",
            announced_crc=stream.checksum,
            crc=_CRC_LEN if stream.checksum else 0,
            schema_b=self._mysql.database.encode(),
            tables_b=frozenset(t.encode() for t in self._tables),
        )
        skip_ids = st.skip_ids
        by_id = st.by_id
        batch: list[SourceItem] = []
        last_flush = time.monotonic()
        buf = b""
        p = 0
        while not stop.is_set():
            data = read1(_CHUNK_BYTES)
            if not data:
                raise ConnectionError("the server closed the binlog stream")
            buf = buf[p:] + data if p < len(buf) else data
            p = 0
            n = len(buf)
            events = 0
            crc = st.crc
            query_post_header = st.post_header[_QUERY]
            # Unreadable tables whose columns are due to be read again (cdc.reader.unreadable):
            # their known table ids must not take the fast path. Usually empty.
            retry = self._unreadable.due(time.monotonic()) if self._unreadable else _NOTHING
            while n - p >= 4:
                plen = buf[p] | buf[p + 1] << 8 | buf[p + 2] << 16
                q = p + 4 + plen
                if plen == _LONG_PACKET or q - n > _CHUNK_BYTES:
                    # A large event: read exactly what it lacks (linear, not a buffer
                    # copy per socket read), and skip an unwatched table's without keeping it.
                    payload, buf = _read_packet(read, buf, p, n, by_id)
                    p = 0
                    n = len(buf)
                    events += 1
                    if payload is None:
                        continue
                    if payload[0]:
                        _packet_error(payload)
                    self._event(st, payload, 1, len(payload), payload[5], batch)
                    crc = st.crc
                    query_post_header = st.post_header[_QUERY]
                    continue
                if q > n:
                    break
                if buf[p + 4]:
                    _packet_error(buf[p + 4 : q])
                e = p + 5
                etype = buf[e + 4]
                events += 1
                # Fast path: what a busy dialer writes thousands of times a second.
                if etype == _TABLE_MAP:
                    # A known table id keeps its definition within a file (a DDL makes
                    # a new one): both unwatched and already-decoded ones are done.
                    lo, hi = _TABLE_ID(buf, e + 19)
                    table_id = lo | hi << 32
                    if table_id in skip_ids or (
                        table_id in by_id and not (retry and by_id[table_id].table in retry)
                    ):
                        p = q
                        continue
                elif 23 <= etype <= 25 or 30 <= etype <= 32:
                    lo, hi = _TABLE_ID(buf, e + 19)
                    if lo | hi << 32 not in by_id:
                        p = q
                        continue
                elif etype == _MARIADB_GTID:
                    server_id, seq, domain = _GTID(buf, e)
                    st.gtid = (domain, server_id, seq)
                    st.thread = 0
                    if st.rows:
                        st.rows = []
                    p = q
                    continue
                elif etype == _QUERY:
                    ts, log_pos, thread, db_len, status_len = _QUERY_HEAD(buf, e)
                    qs = e + 20 + query_post_header + status_len + db_len
                    if q - crc - qs == 6 and buf.startswith(b"COMMIT", qs):
                        # The end of a MyISAM statement's group (one per noise row).
                        st.last_ts = ts
                        self._finish_group(st, batch, log_pos, ts, thread)
                        p = q
                        continue
                self._event(st, buf, e, q, etype, batch)
                if etype == _FORMAT_DESCRIPTION:
                    crc = st.crc
                    query_post_header = st.post_header[_QUERY]
                p = q
            # Per socket read: statistics, then hand over what is due.
            now = time.monotonic()
            stats.events += events
            if not stats.connected:
                stats.connected = True
                log.info("binlog.connected position=%s", self._last_end or self._gtid_start)
            if st.heartbeat:
                stats.last_heartbeat_monotonic = now
            if stats.fault is not None:
                self._progress(caught_up=st.heartbeat)
            if events > (1 if st.heartbeat else 0):
                stats.last_event_monotonic = now
                stats.last_event_wall = time.time()
                stats.last_event_ts = st.last_ts
            if (batch or st.end is not None) and (
                st.batch_has_rows or st.heartbeat or now - last_flush >= self._flush_interval_s
            ):
                if not self._flush(st, batch):
                    return
                batch = []
                last_flush = now
            st.heartbeat = False
            if len(data) < _CHUNK_BYTES and self._linger_s and time.time() - st.last_ts <= _LIVE_S:
                stop.wait(self._linger_s)  # caught up: let the next burst gather

    # -- events (the slow path: everything that is not skipped) -----------------------

    def _event(self, st: _State, buf: bytes, e: int, q: int, etype: int, batch: list[SourceItem]) -> None:
        """One event ``buf[e:q]`` (header included, checksum included if negotiated)."""
        ee = q - st.crc  # end of the event body
        if etype == _QUERY:
            self._query(st, buf, e, ee, batch)
        elif etype == _TABLE_MAP:
            self._table_map(st, buf, e, ee)
        elif etype in _OPS:
            lo, hi = _TABLE_ID(buf, e + 19)
            decoder = st.by_id.get(lo | hi << 32)
            if decoder is not None:
                _verify(st, buf, e, ee)
                self._rows(st, decoder, buf, e, ee, etype, batch)
        elif etype == _MARIADB_GTID:
            server_id, seq, domain = _GTID(buf, e)
            st.gtid = (domain, server_id, seq)
            st.thread = 0
            st.rows = []
        elif etype == _XID:
            ts, log_pos = _HEAD(buf, e)
            st.last_ts = ts
            self._finish_group(st, batch, log_pos, ts, st.thread)
        elif etype == _ROTATE:
            ts = _U32(buf, e)[0]
            position = int.from_bytes(buf[e + 19 : e + 27], "little")
            name = buf[e + 27 : ee].decode("utf-8", "surrogateescape")
            self._stats.binlog_file = name
            st.file = name
            st.skip_ids.clear()  # table ids are only unique within one server run
            st.by_id.clear()
            if ts != 0 and not st.rows:
                st.end = (name, position, st.gtid, st.last_ts, st.thread)
                st.gtid = None
                st.thread = 0
        elif etype == _FORMAT_DESCRIPTION:
            _format_description(st, buf, e, q)
        elif etype == _HEARTBEAT:
            st.heartbeat = True
        elif etype == _MYSQL_GTID:
            st.gtid = ("mysql", buf[e + 20 : e + 36], int.from_bytes(buf[e + 36 : e + 44], "little"))
            st.thread = 0
            st.rows = []
        elif (
            etype in (_MARIADB_QUERY_COMPRESSED, _MYSQL_TRANSACTION_PAYLOAD)
            or (etype in _MARIADB_ROWS_COMPRESSED and _u48(buf, e + 19) in st.by_id)
        ):
            # A compressed statement may be a DDL we must see; compressed rows of a
            # watched table we cannot decode; a MySQL payload may hold anything.
            raise ReaderFaultError(
                ReaderFault.COMPRESSED_EVENTS,
                f"event type {etype} in {st.file} before position {_HEAD(buf, e)[1]} is compressed "
                "(MariaDB log_bin_compress=ON or MySQL binlog_transaction_compression=ON)",
            )

    def _query(self, st: _State, buf: bytes, e: int, ee: int, batch: list[SourceItem]) -> None:
        ts, log_pos, thread, db_len, status_len = _QUERY_HEAD(buf, e)
        db_start = e + 19 + st.post_header[_QUERY] + status_len
        qs = db_start + db_len + 1
        st.last_ts = ts
        st.thread = thread
        if ee - qs == 6 and buf.startswith(b"COMMIT", qs):
            self._finish_group(st, batch, log_pos, ts, thread)
            return
        query = buf[qs:ee]
        if query == b"BEGIN":
            return
        _verify(st, buf, e, ee)
        schema = buf[db_start : db_start + db_len].decode("utf-8", "surrogateescape")
        changes = self._schema_changes(schema, query, ts, Position(st.file, log_pos))
        if changes:
            self._materialize(st, batch)
            for change in changes:
                self._forget_table(st, change.table)
            batch.extend(changes)
        self._finish_group(st, batch, log_pos, ts, thread)

    def _table_map(self, st: _State, buf: bytes, e: int, ee: int) -> None:
        body = e + 19
        ph = st.post_header[_TABLE_MAP]
        table_id = int.from_bytes(buf[body : body + (4 if ph == 6 else 6)], "little")
        pos = body + ph
        schema_len = buf[pos]
        table_at = pos + schema_len + 2
        name = buf[table_at + 1 : table_at + 1 + buf[table_at]]
        if buf[pos + 1 : pos + 1 + schema_len] != st.schema_b or (
            name not in st.tables_b and not always_watched(name.decode("utf-8", "replace"))
        ):
            st.skip_ids.add(table_id)
            return
        _verify(st, buf, e, ee)
        signature = buf[pos:ee]
        ts, log_pos = _HEAD(buf, e)
        position = Position(st.file, log_pos)
        cached = self._decoders.get(signature)
        if cached is not None and cached[1] is not None:
            # Built from the schema history: still the definition for this position?
            types = tuple(spec.type for spec in cached[0].specs)
            if self._columns_at(cached[0].table, position, types) is not cached[1]:
                cached = None
        unreadable = self._unreadable
        if cached is not None and unreadable and unreadable.retry_due(cached[0].table, time.monotonic()):
            cached = None  # read its columns again: a GRANT may have come
        if cached is None:
            cached = self._build_decoder(rowdecode.parse_table_map(buf, body, ee, ph), position, ts)
            if len(self._decoders) >= 256:
                self._decoders.clear()
            self._decoders[signature] = cached
        st.by_id[table_id] = cached[0]

    def _build_decoder(
        self, tmap: rowdecode.TableMap, position: Position, timestamp: int
    ) -> tuple[rowdecode.RowDecoder, tuple[ColumnInfo, ...] | None]:
        """Like ``BinlogReader._enrich``: the schema history fills what the binlog lacks.

        Returns the decoder and the definition it was built from (``None``: the binlog's
        own metadata sufficed).
        """
        info = None
        if rowdecode.needs_schema(tmap):
            now = time.monotonic()
            unreadable = self._unreadable
            if tmap.table not in unreadable or unreadable.retry_due(tmap.table, now):
                info = self._columns_at(tmap.table, position, tmap.types)
                readable = info is not None or tmap.names is not None or self._history.has(tmap.table)
                unreadable.update(tmap.table, readable, now)
            # An unreadable custom table: placeholder names, its rows counted and handed over.
            if info is None and tmap.table not in unreadable:
                if tmap.names is None:
                    raise self._ambiguous(tmap.schema, tmap.table, position, tmap.types, timestamp)
                in_force = self._history.at(tmap.table, position)  # names come from the binlog
                info = in_force.columns if in_force is not None else None
        try:
            return rowdecode.build_decoder(tmap, info), info
        except rowdecode.UnsupportedColumnError as exc:
            raise SourceError(f"table {tmap.schema}.{tmap.table}: {exc}") from exc

    def _rows(
        self,
        st: _State,
        decoder: rowdecode.RowDecoder,
        buf: bytes,
        e: int,
        ee: int,
        etype: int,
        batch: list[SourceItem],
    ) -> None:
        ts, log_pos = _HEAD(buf, e)
        op = _OPS[etype]
        pos = e + 19 + st.post_header.get(etype, 8)
        if etype >= 30:  # v2: variable-length extra data after the post-header
            pos += int.from_bytes(buf[e + 27 : e + 29], "little") - 2
        count = buf[pos]
        pos += 1
        if count >= 251:
            count, pos = rowdecode.read_lenenc(buf, pos - 1)
        nbytes = (count + 7) // 8
        layout = decoder.layout(buf[pos : pos + nbytes])
        pos += nbytes
        layout_after = layout
        if op is Op.UPDATE:
            layout_after = decoder.layout(buf[pos : pos + nbytes])
            pos += nbytes
        table = decoder.table
        schema = decoder.schema
        row = decoder.row
        append = st.rows.append
        if self._unreadable and table in self._unreadable:
            append = _discard
        rows = 0
        while pos < ee:
            before: dict[str, Value] | None = None
            after: dict[str, Value] | None = None
            if op is Op.INSERT:
                after, pos = row(buf, pos, layout)
            else:
                before, pos = row(buf, pos, layout)
                if op is Op.UPDATE:
                    if decoder.undecodable:
                        self._check_text(decoder, table, before)
                    after, pos = row(buf, pos, layout_after)
            if decoder.undecodable:
                self._check_text(decoder, table, after if after is not None else before)
            append((schema, table, op, before, after, ts, log_pos))
            rows += 1
        st.last_ts = ts
        if append is _discard:
            st.unreadable.append(
                UnreadableRows(
                    schema, table, op, rows, UNREADABLE_REASON, ts, log_file=st.file, log_pos=log_pos
                )
            )
        key = (table, op.value)
        self._stats.rows[key] = self._stats.rows.get(key, 0) + rows
        if self._on_event is not None:
            self._on_event(table, op.value, rows)

    def _check_text(
        self, decoder: rowdecode.RowDecoder, table: str, values: Mapping[str, Value] | None
    ) -> None:
        """Count and report text that did not decode, as ``BinlogReader._normalize`` does."""
        if not decoder.undecodable:
            return
        lead_id = values.get("lead_id") if values is not None else None
        for column in decoder.undecodable:
            self._stats.decode_errors += 1
            log.warning("binlog.decode_error table=%s column=%s lead_id=%s", table, column, lead_id)
            if self._on_decode_error is not None:
                self._on_decode_error(table, lead_id)
        decoder.undecodable.clear()

    # -- groups and batches -----------------------------------------------------------

    def _finish_group(self, st: _State, batch: list[SourceItem], log_pos: int, ts: int, thread: int) -> None:
        """A group ended at ``log_pos``: its rows (with the group's thread id), then its end."""
        if st.rows:
            self._materialize(st, batch)
            file = st.file
            batch.extend(
                RowChange(
                    schema=schema,
                    table=table,
                    op=op,
                    before=before,
                    after=after,
                    timestamp=row_ts,
                    thread_id=thread,
                    log_file=file,
                    log_pos=row_pos,
                )
                for schema, table, op, before, after, row_ts, row_pos in st.rows
            )
            st.rows = []
            st.batch_has_rows = True
        if st.unreadable:
            self._materialize(st, batch)
            batch.extend(dataclasses.replace(u, thread_id=thread) for u in st.unreadable)
            st.unreadable = []
            st.batch_has_rows = True
        st.end = (st.file, log_pos, st.gtid, ts, thread)
        st.gtid = None
        st.thread = 0

    def _materialize(self, st: _State, batch: list[SourceItem]) -> None:
        """Turn the pending group end (the latest of a run of empty groups) into a record."""
        end = st.end
        if end is None:
            return
        file, pos, gtid, ts, thread = end
        position = Position(file, pos, _gtid_text(gtid))
        batch.append(GroupEnd(position, ts, thread))
        st.batch_end = position
        st.end = None

    def _flush(self, st: _State, batch: list[SourceItem]) -> bool:
        """Hand the batch over; the resume position moves to its last group end."""
        self._materialize(st, batch)
        if st.batch_end is not None:
            self._last_end = st.batch_end
            self._stats.position = st.batch_end
        st.batch_has_rows = False
        return self._send(batch)

    def _forget_table(self, st: _State, table: str) -> None:
        """A DDL statement touched ``table``: rebuild its decoder at its next table map."""
        for signature in [s for s, (d, _) in self._decoders.items() if d.table == table]:
            del self._decoders[signature]
        for table_id in [i for i, d in st.by_id.items() if d.table == table]:
            del st.by_id[table_id]


def _read_packet(
    read: Callable[[int], bytes], buf: bytes, p: int, n: int, watched: Mapping[int, object]
) -> tuple[bytes | None, bytes]:
    """The packet starting at ``buf[p]`` (``buf[p:n]`` read so far), reading what is missing.

    Returns its payload (the parts of a payload split over 16 MB protocol packets
    joined), or ``None`` for a rows event of an unwatched table, which is read and
    dropped in ``_DISCARD_BYTES`` pieces; and the bytes read past its end. Reads exactly
    the missing lengths, so time and memory are linear in the event's size.
    """
    pending = memoryview(buf)[p:n]

    def take(count: int) -> bytes:
        """``count`` bytes: what was read already first, then exactly the rest."""
        nonlocal pending
        have = min(len(pending), count)
        out = bytes(pending[:have])
        pending = pending[have:]
        if have < count:
            more = read(count - have)
            if len(more) < count - have:
                raise ConnectionError("the server closed the binlog stream inside an event")
            out = out + more if out else more
        return out

    parts: list[bytes] | None = []
    head = take(4)
    plen = head[0] | head[1] << 8 | head[2] << 16
    start = take(min(plen, 32))
    if (
        len(start) >= 26
        and start[0] == 0
        and start[5] in _OPS
        and int.from_bytes(start[20:26], "little") not in watched
    ):
        parts = None
    rest = plen - len(start)
    if parts is not None:
        parts.append(start)
    while True:
        while rest:
            piece = take(rest if parts is not None else min(rest, _DISCARD_BYTES))
            rest -= len(piece)
            if parts is not None:
                parts.append(piece)
        if plen < _LONG_PACKET:
            return (b"".join(parts) if parts is not None else None), bytes(pending)
        head = take(4)
        plen = rest = head[0] | head[1] << 8 | head[2] << 16


def _packet_error(payload: bytes) -> NoReturn:
    """An error or end-of-file packet in place of an event."""
    if payload[0] == 0xFF:
        pymysql.err.raise_mysql_exception(payload)
    if payload[0] == 0xFE and len(payload) < 9:
        raise ConnectionError("the server ended the binlog stream (EOF packet)")
    raise ReaderFaultError(
        ReaderFault.MALFORMED_EVENT, f"unexpected binlog packet starting with {payload[0]:#x}"
    )


def _u48(buf: bytes, at: int) -> int:
    return int.from_bytes(buf[at : at + 6], "little")


def _verify(st: _State, buf: bytes, e: int, ee: int) -> None:
    """Check the CRC32 of an event we are about to decode."""
    if st.crc and zlib.crc32(buf[e:ee]) != _U32(buf, ee)[0]:
        raise ReaderFaultError(
            ReaderFault.MALFORMED_EVENT,
            f"binlog event checksum mismatch in {st.file} before position {_HEAD(buf, e)[1]}: "
            "the stream is corrupt"
        )


def _format_description(st: _State, buf: bytes, e: int, q: int) -> None:
    """Post-header lengths and the checksum algorithm of the file that starts here."""
    body = e + 19
    # binlog version (2), server version (50), create time (4), header length (1), then
    # one post-header length per event type, then the checksum algorithm and its CRC.
    alg_at = q - _CRC_LEN - 1
    lengths = buf[body + 57 : alg_at]
    post_header = dict(_DEFAULT_POST_HEADER)
    for etype in post_header:
        if etype - 1 < len(lengths):
            post_header[etype] = lengths[etype - 1]
    st.post_header = post_header
    st.crc = _CRC_LEN if st.announced_crc and buf[alg_at] != 0 else 0
    st.skip_ids.clear()
    st.by_id.clear()


_NOTHING: Final[frozenset[str]] = frozenset()


def _discard(_row: _Row) -> None:
    """Where the rows of an unreadable table go: they are counted, never handed over."""


def _gtid_text(gtid: tuple[Any, ...] | None) -> str:
    if gtid is None:
        return ""
    if gtid[0] == "mysql":
        hexed = gtid[1].hex()
        return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}:{gtid[2]}"
    return f"{gtid[0]}-{gtid[1]}-{gtid[2]}"


# -- recorded binlog files (no server) ------------------------------------------------


def file_events(data: bytes) -> Iterator[bytes]:
    """The events of a binlog file as the server wrote it (header, body, checksum), in order.

    Framing only (each event's header holds its size), so that a recorded file can be
    replayed through :func:`read_recorded`. Raises ``ValueError`` on a truncated file.
    """
    if not data.startswith(BINLOG_MAGIC):
        raise ValueError("not a binlog file (no magic number)")
    p = len(BINLOG_MAGIC)
    while p < len(data):
        size = _U32(data, p + 9)[0] if len(data) - p >= _EVENT_HEADER else 0
        if size < _EVENT_HEADER or p + size > len(data):
            raise ValueError(f"binlog file truncated at byte {p}")
        yield data[p : p + size]
        p += size


def read_recorded(
    events: Iterable[bytes],
    columns: Mapping[str, Sequence[ColumnInfo]],
    *,
    file: str,
    database: str = "asterisk",
    tables: Iterable[str] = (),
    chunk_bytes: int = _CHUNK_BYTES,
) -> list[SourceItem]:
    """What the fast reader hands over for recorded events, with no server.

    The events go through the reader's own path (``_follow``): replication packet
    framing (socket reads of ``chunk_bytes``, so packets split across reads), checksum
    checks, table maps, row decoding, group ends. ``columns`` stands in for
    ``information_schema``: a binlog written with ``binlog_row_metadata=NO_LOG`` names
    no column. Raises what the reader would (``ReaderFaultError`` on a bad checksum).
    """
    start = Position(file, len(BINLOG_MAGIC))
    # Hand over at every read (no linger, no flush interval): nothing waits for a next read.
    reader = _RecordedReader(
        MysqlConfig(database=database), tables, start, linger_s=0.0, flush_interval_s=0.0
    )
    reader._remember([(table, start, tuple(cols)) for table, cols in columns.items()])
    stream = b"".join(_packets(b"\x00" + event) for event in events)
    with contextlib.suppress(ConnectionError):  # the end of the recording
        reader._follow(_RecordedStream(stream, chunk_bytes))
    return reader.items


def _packets(payload: bytes) -> bytes:
    """``payload`` as MySQL protocol packets (16 MB parts; a full last part gets an empty one)."""
    out = []
    for at in range(0, len(payload) + 1, _LONG_PACKET):
        part = payload[at : at + _LONG_PACKET]
        out.append(len(part).to_bytes(3, "little") + b"\x00" + part)
        if len(part) < _LONG_PACKET:
            break
    return b"".join(out)


class _RecordedReader(FastBinlogReader):
    """Collects the batches instead of handing them to an event loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items: list[SourceItem] = []
        self._schema = _NoServer(self._mysql)

    def _send(self, batch: list[SourceItem]) -> bool:
        self.items.extend(batch)
        return True


class _NoServer(SchemaCache):
    """No ``information_schema`` behind a recording: a table without columns is ambiguous."""

    def load(self, tables: Iterable[str]) -> dict[str, tuple[ColumnInfo, ...]]:
        return {}


class _RecordedStream(io.BytesIO):
    """Recorded packets; ``read1`` returns at most ``chunk_bytes``, as a socket returns what
    has arrived. Recorded files carry checksums when their FORMAT_DESCRIPTION says so."""

    checksum = True

    def __init__(self, data: bytes, chunk_bytes: int) -> None:
        super().__init__(data)
        self._chunk = chunk_bytes

    def read1(self, size: int | None = -1, /) -> bytes:
        return super().read1(self._chunk if size is None or size < 0 else min(size, self._chunk))
