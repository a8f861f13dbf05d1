"""Binlog bytes on the wire and on disk: replication packets, event framing, event types.

A replication stream is MySQL protocol packets (3-byte length, sequence, payload);
each payload is an OK byte and one event (19-byte header, body, CRC32 when the
server checksums). An event over 16 MB spans several packets. A binlog file is the
magic number followed by the same events. Pure, no I/O of its own: the readers pass
their ``read`` function in.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from typing import Final, NoReturn

import pymysql

from ..errors import ReaderFault, ReaderFaultError
from ..records import Op

__all__ = [
    "BINLOG_MAGIC",
    "EVENT_HEADER",
    "LONG_PACKET",
    "ROWS_OPS",
    "RecordedPackets",
    "file_events",
    "packet_error",
    "packets",
    "read_packet",
]

#: Rows event types (v1 and v2) and the operation each logs.
ROWS_OPS: Final[Mapping[int, Op]] = {
    23: Op.INSERT,
    24: Op.UPDATE,
    25: Op.DELETE,
    30: Op.INSERT,
    31: Op.UPDATE,
    32: Op.DELETE,
}
#: The payload length of a packet that is followed by another part of the same payload.
LONG_PACKET: Final = 0xFFFFFF
#: The first bytes of every binlog file.
BINLOG_MAGIC: Final = b"\xfebin"
EVENT_HEADER: Final = 19
_DISCARD_BYTES: Final = 1 << 20  # read size while dropping a large event of an unwatched table


def read_packet(
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
        and start[5] in ROWS_OPS
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
        if plen < LONG_PACKET:
            return (b"".join(parts) if parts is not None else None), bytes(pending)
        head = take(4)
        plen = rest = head[0] | head[1] << 8 | head[2] << 16


def packet_error(payload: bytes) -> NoReturn:
    """An error or end-of-file packet in place of an event (or a packet that is neither)."""
    if payload[0] == 0xFF:
        pymysql.err.raise_mysql_exception(payload)
    if payload[0] == 0xFE and len(payload) < 9:
        raise ConnectionError("the server ended the binlog stream (EOF packet)")
    raise ReaderFaultError(
        ReaderFault.MALFORMED_EVENT, f"unexpected binlog packet starting with {payload[0]:#x}"
    )


def file_events(data: bytes) -> Iterator[bytes]:
    """The events of a binlog file as the server wrote it (header, body, checksum), in order.

    Framing only (each event's header holds its size), so that a recorded file can be
    replayed through :func:`cdc.reader.recorded.read_recorded`. Raises ``ValueError`` on a truncated file.
    """
    if not data.startswith(BINLOG_MAGIC):
        raise ValueError("not a binlog file (no magic number)")
    p = len(BINLOG_MAGIC)
    while p < len(data):
        size = int.from_bytes(data[p + 9 : p + 13], "little") if len(data) - p >= EVENT_HEADER else 0
        if size < EVENT_HEADER or p + size > len(data):
            raise ValueError(f"binlog file truncated at byte {p}")
        yield data[p : p + size]
        p += size


def packets(payload: bytes) -> bytes:
    """``payload`` as MySQL protocol packets (16 MB parts; a full last part gets an empty one)."""
    out = []
    for at in range(0, len(payload) + 1, LONG_PACKET):
        part = payload[at : at + LONG_PACKET]
        out.append(len(part).to_bytes(3, "little") + b"\x00" + part)
        if len(part) < LONG_PACKET:
            break
    return b"".join(out)


class RecordedPackets(io.BytesIO):
    """Recorded packets as a stream; ``read1`` returns at most ``chunk_bytes``, as a socket
    returns what has arrived. Recorded files carry checksums when their FORMAT_DESCRIPTION says so."""

    checksum = True

    def __init__(self, data: bytes, chunk_bytes: int) -> None:
        super().__init__(data)
        self._chunk = chunk_bytes

    def read1(self, size: int | None = -1, /) -> bytes:
        return super().read1(self._chunk if size is None or size < 0 else min(size, self._chunk))
