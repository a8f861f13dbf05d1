"""The replication handshake of the fast reader: a raw binlog stream over PyMySQL.

PyMySQL does what it is good at: the connection, authentication and TLS
(:func:`cdc.reader.connection.connection_settings`), and the ``SET`` statements a replica sends
before it asks for the binlog, through ordinary cursors. The dump command and the
stream are ours: PyMySQL has no public way to send a command it does not know or to
read a packet without building a result, so once the session is prepared we take its
socket (``Connection._sock``, the one private attribute we touch: present since
PyMySQL 0.x and the only handle on a TLS-wrapped socket, which PyMySQL creates during
its own handshake) and speak the replication protocol on it ourselves.

What is sent is what ``mysql-replication`` 1.0 sends for the same arguments (read in
its ``BinLogStreamReader.__connect_to_stream``), so the server sees no change:

- ``SET @master_binlog_checksum = @@global.binlog_checksum`` when the server
  checksums its binlog (else it refuses a replica that does not say it copes);
- ``SET @master_heartbeat_period`` in nanoseconds (an idle server sends a heartbeat
  event this often, so a silent network is told from an idle dialer);
- ``SET @mariadb_slave_capability = 4`` (MariaDB then sends its GTID events as they
  are; a lower capability trips a MariaDB 10.6 bug when it rewrites them);
- for a GTID start, MariaDB's ``@slave_connect_state``, strict mode on and duplicates
  not ignored, then ``COM_BINLOG_DUMP`` with an empty file name;
- ``COM_BINLOG_DUMP`` (file, position, blocking, our ``server_id``).

No ``COM_REGISTER_SLAVE``: the library sends it only when given ``report_slave``, which
we never gave. A dump works without it; it would only list the streamer in ``SHOW
SLAVE HOSTS``. A server kills an older dump thread with the same ``server_id`` either
way (why ``[mysql] server_id`` must be unique).
"""

from __future__ import annotations

import contextlib
import io
import struct
from dataclasses import dataclass
from typing import Any, Final

import pymysql

from ..config import MysqlConfig
from ..records import Position

__all__ = ["BinlogStream", "dump_command", "heartbeat_period_s", "open_stream"]

_COM_BINLOG_DUMP: Final = 0x12
#: The largest heartbeat period a server accepts, in seconds.
_MAX_HEARTBEAT_S: Final = 4294967
#: The library's default start offset: right after the binlog file's 4-byte magic.
_FILE_START: Final = 4


def heartbeat_period_s(mysql: MysqlConfig) -> float:
    """The heartbeat period asked of the server: below the read timeout, so an idle
    server is never taken for a dead one."""
    return min(mysql.heartbeat_s, mysql.read_timeout_s / 2, _MAX_HEARTBEAT_S)


def dump_command(server_id: int, position: Position | None) -> bytes:
    """The ``COM_BINLOG_DUMP`` payload: from ``position``, or (``None``) from the GTID
    state set beforehand (MariaDB: an empty file name means "use @slave_connect_state").

    Flags 0: blocking (the server waits for new events instead of ending the stream),
    no annotate-rows events.
    """
    file, pos = (position.file, position.pos) if position is not None else ("", _FILE_START)
    return struct.pack("<BIHI", _COM_BINLOG_DUMP, pos, 0, server_id) + file.encode()


@dataclass(frozen=True, slots=True)
class BinlogStream:
    """An open binlog dump: raw replication packets (4-byte header, then payload).

    ``read1(n)`` returns what has arrived (at most ``n`` bytes, at least one, empty at
    the end of the stream); ``read(n)`` returns exactly ``n`` bytes unless the stream
    ends first. ``checksum``: whether events carry a CRC32 (the server announced it).
    """

    connection: pymysql.Connection[Any]
    file: io.BufferedReader
    checksum: bool

    def read1(self, size: int) -> bytes:
        return self.file.read1(size)

    def read(self, size: int) -> bytes:
        return self.file.read(size)

    def close(self) -> None:
        """Close the reader of the socket, then the connection (the socket's last user).

        Never raises: the stream is closed because it ended or failed, and that error is
        the one worth reporting.
        """
        with contextlib.suppress(Exception):
            self.file.close()
        _close(self.connection)

    def __enter__(self) -> BinlogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stream(settings: dict[str, Any], mysql: MysqlConfig, start: Position | str) -> BinlogStream:
    """Connect with ``settings`` (PyMySQL keyword arguments) and start a binlog dump at
    ``start``: a position, or a MariaDB GTID list.

    Raises what PyMySQL raises (the reader classifies it); the server's refusal of the
    dump itself (a purged file, a GTID it does not have) arrives as the stream's first
    packet, an error packet.
    """
    conn = pymysql.connect(**settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL VARIABLES LIKE 'BINLOG_CHECKSUM'")
            row = cur.fetchone()
            checksum = row is not None and row[1] != "NONE"
            if checksum:
                cur.execute("SET @master_binlog_checksum = @@global.binlog_checksum")
            period = heartbeat_period_s(mysql)
            if period:
                cur.execute("SET @master_heartbeat_period = %s", (int(period * 1_000_000_000),))
            cur.execute("SET @mariadb_slave_capability = 4")
            if isinstance(start, str):
                cur.execute("SET @slave_connect_state = %s", (start,))
                cur.execute("SET @slave_gtid_strict_mode = 1")
                cur.execute("SET @slave_gtid_ignore_duplicates = 0")
        payload = dump_command(mysql.server_id, start if isinstance(start, Position) else None)
        # The session is idle (every reply read): the socket is ours from here on.
        sock = conn._sock  # private: the one access we keep (module docstring)
        if sock is None:
            raise ConnectionError("the binlog connection closed during the handshake")
        sock.settimeout(mysql.read_timeout_s)
        sock.sendall(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)  # a new command: sequence 0
        return BinlogStream(conn, sock.makefile("rb"), checksum)
    except BaseException:
        _close(conn)
        raise


def _close(conn: pymysql.Connection[Any]) -> None:
    """``COM_QUIT`` and close; a connection already broken just closes."""
    with contextlib.suppress(Exception):
        conn.close()
