"""The raw source: skips the dialer's noise at packet level.

The connection and the dump request are :mod:`cdc.reader.replication`'s (PyMySQL for the
connection, TLS and the session variables; our own ``COM_BINLOG_DUMP``): ``mysql-replication``
(the library source's) plays no part. We read the socket ourselves because the
library's per-event path is where its time goes: for every packet it builds a PyMySQL
packet object, a ``BinLogPacketWrapper`` and an event object, and it re-reads each
table map, before a table filter can throw any of it away. A VICIdial binlog is more
than 95 % rows of tables we never look at.

So we frame the replication packets out of large socket reads (:mod:`cdc.reader.framing`)
and, per event, look at two things only: the event type and, for ``TABLE_MAP`` and
rows events, the table id. A rows event whose table id is not mapped to a watched
table is skipped without building anything. Watched tables get a
:class:`cdc.reader.rowdecode.RowDecoder` built once from their ``TABLE_MAP`` (types and
metadata, plus the schema history when the server does not log
``binlog_row_metadata=FULL``), cached by the table map's bytes (its column signature)
and dropped when a DDL statement for the table passes by.

Semantics are those of :mod:`cdc.reader.library` (the differential test compares both
sources value by value; both group rows through :class:`cdc.reader.groups.GroupAssembler`):
the same group ends, thread ids and normalized values (:mod:`cdc.reader.rowdecode` lists
the three places where the library loses data and we do not). CRC32 checksums are
stripped from every event (per file, as its FORMAT_DESCRIPTION says) and verified on
the events we decode.

What differs is when things happen, not what: batches are handed over per socket
read (at most 64 KB) instead of per group, after a ``linger_s`` pause once the reader
has caught up; and a few statistics move per read (event count, last-event clocks).
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from ..errors import ReaderFault, ReaderFaultError, SourceError
from ..records import Op, Position, UnreadableRows, Value
from . import framing, replication, rowdecode
from .connection import connection_settings
from .groups import GroupAssembler, Row
from .schema import always_watched
from .schemahistory import ColumnInfo
from .source import Feed
from .unreadable import UNREADABLE_REASON

__all__ = ["CHUNK_BYTES", "Packets", "RawSource"]

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
_OPS: Final = framing.ROWS_OPS
#: The same, as the operation's name (``Op.value`` is a property: not read per event).
_OP_NAMES: Final = {etype: op.value for etype, op in _OPS.items()}
#: Post-header lengths until the server's FORMAT_DESCRIPTION says otherwise.
_DEFAULT_POST_HEADER: Final = {_QUERY: 13, _TABLE_MAP: 8, 23: 8, 24: 8, 25: 8, 30: 10, 31: 10, 32: 10}
#: Socket read size: also bounds the rows one batch holds.
CHUNK_BYTES: Final = 1 << 16
_LONG_PACKET: Final = framing.LONG_PACKET
_CRC_LEN: Final = 4
#: Events at most this old (server clock) mean the reader follows the server live; a
#: short read then means "caught up" rather than "the server has not sent more yet".
_LIVE_S: Final = 2.0
#: Decoders kept by table-map signature before the cache starts over.
_MAX_DECODERS: Final = 256

# Little-endian views into an event (offsets from the start of its 19-byte header).
_TABLE_ID = struct.Struct("<IH").unpack_from  # at +19: 6-byte table id
_GTID = struct.Struct("<5xI10xQI").unpack_from  # server_id @5, then seq_no @19, domain @27
#: ts @0, log_pos @13, then the Query post-header: thread @19, db length @27, status length @30
_QUERY_HEAD = struct.Struct("<I9xI2xI4xB2xH").unpack_from
_HEAD = struct.Struct("<I9xI").unpack_from  # ts @0, log_pos @13
_U32 = struct.Struct("<I").unpack_from


class Packets(Protocol):
    """Where the raw source reads replication packets: a :class:`cdc.reader.replication.BinlogStream`,
    or recorded ones (:class:`cdc.reader.framing.RecordedPackets`)."""

    @property
    def checksum(self) -> bool: ...

    def read1(self, size: int) -> bytes: ...

    def read(self, size: int) -> bytes: ...


@dataclass(slots=True)
class _State:
    """What the reader thread knows about one connection's stream, shared by the fast and slow paths."""

    group: GroupAssembler
    announced_crc: bool
    crc: int
    post_header: dict[int, int] = field(default_factory=lambda: dict(_DEFAULT_POST_HEADER))
    #: Table ids known to belong to unwatched tables (cleared at each new file).
    skip_ids: set[int] = field(default_factory=set)
    #: Table id -> decoder of a watched table.
    by_id: dict[int, rowdecode.RowDecoder] = field(default_factory=dict)
    last_ts: int = 0
    heartbeat: bool = False
    #: The watched database and tables, encoded as table maps carry them.
    schema_b: bytes = b""
    tables_b: frozenset[bytes] = frozenset()


class RawSource:
    """Reads replication packets itself and decodes only the watched tables' rows."""

    #: A compressed event of a watched table is a fault this source raises itself.
    sees_compressed_events = True

    def __init__(self, *, linger_s: float = 0.02) -> None:
        """``linger_s``: once the reader has caught up with the server, it waits this long
        before reading again, so that what a busy dialer writes meanwhile arrives as
        one chunk and one batch. Reading each statement's events as they come costs a
        wake-up per statement here and a commit per batch in the pipeline; the price
        is at most ``linger_s`` of extra latency. While behind (a short read of events
        older than ``_LIVE_S``: a backlog the server streams), it never waits. At 20 ms
        (``bench.run`` live runs, 200 leads/s + 5,000 noise/s) the streamer used a tenth
        less CPU than at 5 ms and its p99 was lower too: fewer, fuller batches.
        """
        self._linger_s = linger_s
        #: Decoders by table-map signature (the TABLE_MAP body after the table id).
        self._decoders: dict[bytes, tuple[rowdecode.RowDecoder, tuple[ColumnInfo, ...] | None]] = {}

    def follow(self, feed: Feed) -> None:
        settings = connection_settings(feed.mysql)
        with replication.open_stream(settings, feed.mysql, feed.resume) as stream:
            self.read(stream, feed)

    def read(self, packets: Packets, feed: Feed) -> None:
        """Read packets until stopped; raises what ends the stream (``ConnectionError`` at its end)."""
        read1 = packets.read1
        read = packets.read
        stats = feed.stats
        stop = feed.stop
        unreadable = feed.unreadable
        resume = feed.resume
        st = _State(
            group=GroupAssembler(resume.file if isinstance(resume, Position) else ""),
            announced_crc=packets.checksum,
            crc=_CRC_LEN if packets.checksum else 0,
            schema_b=feed.mysql.database.encode(),
            tables_b=frozenset(t.encode() for t in feed.tables),
        )
        group = st.group
        skip_ids = st.skip_ids
        by_id = st.by_id
        last_flush = time.monotonic()
        buf = b""
        p = 0
        while not stop.is_set():
            data = read1(CHUNK_BYTES)
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
            retry = unreadable.due(time.monotonic()) if unreadable else _NOTHING
            while n - p >= 4:
                plen = _U32(buf, p)[0] & 0xFFFFFF  # 3-byte length; the 4th byte is the sequence id
                q = p + 4 + plen
                if plen == _LONG_PACKET or q - n > CHUNK_BYTES:
                    # A large event: read exactly what it lacks (linear, not a buffer
                    # copy per socket read), and skip an unwatched table's without keeping it.
                    payload, buf = framing.read_packet(read, buf, p, n, by_id)
                    p = 0
                    n = len(buf)
                    events += 1
                    if payload is None:
                        continue
                    if payload[0]:
                        framing.packet_error(payload)
                    self._event(feed, st, payload, 1, len(payload), payload[5])
                    crc = st.crc
                    query_post_header = st.post_header[_QUERY]
                    continue
                if q > n:
                    break
                if buf[p + 4]:
                    framing.packet_error(buf[p + 4 : q])
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
                    if group.rows:
                        group.begin((domain, server_id, seq))
                    else:  # GroupAssembler.begin without its call: once per statement
                        group.gtid = (domain, server_id, seq)
                        group.thread = 0
                    p = q
                    continue
                elif etype == _QUERY:
                    ts, log_pos, thread, db_len, status_len = _QUERY_HEAD(buf, e)
                    qs = e + 20 + query_post_header + status_len + db_len
                    if q - crc - qs == 6 and buf.startswith(b"COMMIT", qs):
                        # The end of a MyISAM statement's group (one per noise row).
                        st.last_ts = ts
                        group.finish(log_pos, ts, thread)
                        p = q
                        continue
                self._event(feed, st, buf, e, q, etype)
                if etype == _FORMAT_DESCRIPTION:
                    crc = st.crc
                    query_post_header = st.post_header[_QUERY]
                p = q
            # Per socket read: statistics, then hand over what is due.
            now = time.monotonic()
            stats.events += events
            feed.connected()
            if st.heartbeat:
                stats.last_heartbeat_monotonic = now
            if stats.fault is not None:
                feed.progress(caught_up=st.heartbeat)
            if events > (1 if st.heartbeat else 0):
                stats.last_event_monotonic = now
                stats.last_event_wall = time.time()
                stats.last_event_ts = st.last_ts
            if group.pending() and (
                group.has_rows or st.heartbeat or now - last_flush >= feed.flush_interval_s
            ):
                if not feed.hand_over(*group.take()):
                    return
                last_flush = now
            st.heartbeat = False
            if len(data) < CHUNK_BYTES and self._linger_s and time.time() - st.last_ts <= _LIVE_S:
                stop.wait(self._linger_s)  # caught up: let the next burst gather

    # -- events (the slow path: everything that is not skipped) -----------------------

    def _event(self, feed: Feed, st: _State, buf: bytes, e: int, q: int, etype: int) -> None:
        """One event ``buf[e:q]`` (header included, checksum included if negotiated)."""
        ee = q - st.crc  # end of the event body
        group = st.group
        if etype == _QUERY:
            self._query(feed, st, buf, e, ee)
        elif etype == _TABLE_MAP:
            self._table_map(feed, st, buf, e, ee)
        elif etype in _OPS:
            lo, hi = _TABLE_ID(buf, e + 19)
            decoder = st.by_id.get(lo | hi << 32)
            if decoder is not None:
                _verify(st, buf, e, ee)
                _rows(feed, st, decoder, buf, e, ee, etype)
        elif etype == _MARIADB_GTID:
            server_id, seq, domain = _GTID(buf, e)
            group.begin((domain, server_id, seq))
        elif etype == _XID:
            ts, log_pos = _HEAD(buf, e)
            st.last_ts = ts
            group.finish(log_pos, ts, group.thread)
        elif etype == _ROTATE:
            ts = _U32(buf, e)[0]
            position = int.from_bytes(buf[e + 19 : e + 27], "little")
            name = buf[e + 27 : ee].decode("utf-8", "surrogateescape")
            feed.stats.binlog_file = name
            st.skip_ids.clear()  # table ids are only unique within one server run
            st.by_id.clear()
            group.rotate(name, position, real=ts != 0, timestamp=st.last_ts)
        elif etype == _FORMAT_DESCRIPTION:
            _format_description(st, buf, e, q)
        elif etype == _HEARTBEAT:
            st.heartbeat = True
        elif etype == _MYSQL_GTID:
            group.begin(("mysql", buf[e + 20 : e + 36], int.from_bytes(buf[e + 36 : e + 44], "little")))
        elif etype in (_MARIADB_QUERY_COMPRESSED, _MYSQL_TRANSACTION_PAYLOAD) or (
            etype in _MARIADB_ROWS_COMPRESSED and _u48(buf, e + 19) in st.by_id
        ):
            # A compressed statement may be a DDL we must see; compressed rows of a
            # watched table we cannot decode; a MySQL payload may hold anything.
            raise ReaderFaultError(
                ReaderFault.COMPRESSED_EVENTS,
                f"event type {etype} in {group.file} before position {_HEAD(buf, e)[1]} is compressed "
                "(MariaDB log_bin_compress=ON or MySQL binlog_transaction_compression=ON)",
            )

    def _query(self, feed: Feed, st: _State, buf: bytes, e: int, ee: int) -> None:
        ts, log_pos, thread, db_len, status_len = _QUERY_HEAD(buf, e)
        db_start = e + 19 + st.post_header[_QUERY] + status_len
        qs = db_start + db_len + 1
        group = st.group
        st.last_ts = ts
        group.thread = thread
        if ee - qs == 6 and buf.startswith(b"COMMIT", qs):
            group.finish(log_pos, ts, thread)
            return
        query = buf[qs:ee]
        if query == b"BEGIN":
            return
        _verify(st, buf, e, ee)
        schema = buf[db_start : db_start + db_len].decode("utf-8", "surrogateescape")
        changes = feed.schemas.schema_changes(schema, query, ts, Position(group.file, log_pos))
        if changes:
            for change in changes:
                self._forget_table(st, change.table)
            group.add(list(changes))
        group.finish(log_pos, ts, thread)

    def _table_map(self, feed: Feed, st: _State, buf: bytes, e: int, ee: int) -> None:
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
        position = Position(st.group.file, log_pos)
        cached = self._decoders.get(signature)
        if cached is not None and cached[1] is not None:
            # Built from the schema history: still the definition for this position?
            types = tuple(spec.type for spec in cached[0].specs)
            if feed.schemas.columns_at(cached[0].table, position, types) is not cached[1]:
                cached = None
        unreadable = feed.unreadable
        if cached is not None and unreadable and unreadable.retry_due(cached[0].table, time.monotonic()):
            cached = None  # read its columns again: a GRANT may have come
        if cached is None:
            cached = _build_decoder(feed, rowdecode.parse_table_map(buf, body, ee, ph), position, ts)
            if len(self._decoders) >= _MAX_DECODERS:
                self._decoders.clear()
            self._decoders[signature] = cached
        st.by_id[table_id] = cached[0]

    def _forget_table(self, st: _State, table: str) -> None:
        """A DDL statement touched ``table``: rebuild its decoder at its next table map."""
        for signature in [s for s, (d, _) in self._decoders.items() if d.table == table]:
            del self._decoders[signature]
        for table_id in [i for i, d in st.by_id.items() if d.table == table]:
            del st.by_id[table_id]


def _build_decoder(
    feed: Feed, tmap: rowdecode.TableMap, position: Position, timestamp: int
) -> tuple[rowdecode.RowDecoder, tuple[ColumnInfo, ...] | None]:
    """The schema history fills what the binlog lacks (as the library source's ``_enrich``).

    Returns the decoder and the definition it was built from (``None``: the binlog's
    own metadata sufficed).
    """
    info = None
    if rowdecode.needs_schema(tmap):
        schemas = feed.schemas
        now = time.monotonic()
        unreadable = feed.unreadable
        if tmap.table not in unreadable or unreadable.retry_due(tmap.table, now):
            info = schemas.columns_at(tmap.table, position, tmap.types)
            readable = info is not None or tmap.names is not None or schemas.has(tmap.table)
            unreadable.update(tmap.table, readable, now)
        # An unreadable custom table: placeholder names, its rows counted and handed over.
        if info is None and tmap.table not in unreadable:
            if tmap.names is None:
                raise schemas.ambiguous(tmap.schema, tmap.table, position, tmap.types, timestamp)
            in_force = schemas.at(tmap.table, position)  # names come from the binlog
            info = in_force.columns if in_force is not None else None
    try:
        return rowdecode.build_decoder(tmap, info), info
    except rowdecode.UnsupportedColumnError as exc:
        raise SourceError(f"table {tmap.schema}.{tmap.table}: {exc}") from exc


def _rows(
    feed: Feed, st: _State, decoder: rowdecode.RowDecoder, buf: bytes, e: int, ee: int, etype: int
) -> None:
    """The rows of one rows event of a watched table into the open group."""
    ts, log_pos = _HEAD(buf, e)
    op = _OPS[etype]
    op_name = _OP_NAMES[etype]
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
    group = st.group
    unreadable = bool(feed.unreadable) and table in feed.unreadable
    append = _discard if unreadable else group.rows.append
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
                    _check_text(feed, decoder, table, before)
                after, pos = row(buf, pos, layout_after)
        if decoder.undecodable:
            _check_text(feed, decoder, table, after if after is not None else before)
        append((schema, table, op, before, after, ts, log_pos))
        rows += 1
    st.last_ts = ts
    if unreadable:
        group.add_unreadable(
            UnreadableRows(
                schema, table, op, rows, UNREADABLE_REASON, ts, log_file=group.file, log_pos=log_pos
            )
        )
    feed.count_rows(table, op_name, rows)


def _check_text(
    feed: Feed, decoder: rowdecode.RowDecoder, table: str, values: Mapping[str, Value] | None
) -> None:
    """Count and report text that did not decode, as the library source's ``normalize`` does."""
    lead_id = values.get("lead_id") if values is not None else None
    for column in decoder.undecodable:
        feed.decode_error(table, column, lead_id)
    decoder.undecodable.clear()


def _u48(buf: bytes, at: int) -> int:
    return int.from_bytes(buf[at : at + 6], "little")


def _verify(st: _State, buf: bytes, e: int, ee: int) -> None:
    """Check the CRC32 of an event we are about to decode."""
    if st.crc and zlib.crc32(buf[e:ee]) != _U32(buf, ee)[0]:
        raise ReaderFaultError(
            ReaderFault.MALFORMED_EVENT,
            f"binlog event checksum mismatch in {st.group.file} before position {_HEAD(buf, e)[1]}: "
            "the stream is corrupt",
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


def _discard(_row: Row) -> None:
    """Where the rows of an unreadable table go: they are counted, never handed over."""
