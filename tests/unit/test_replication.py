"""The replication handshake's pure parts: the dump command's bytes and the heartbeat period."""

from __future__ import annotations

import struct

from cdc.config import MysqlConfig
from cdc.reader import replication
from cdc.records import Position


def _mysql(**kwargs: float) -> MysqlConfig:
    return MysqlConfig(host="127.0.0.1", port=3306, user="u", database="asterisk", source="test", **kwargs)


class TestDumpCommand:
    """COM_BINLOG_DUMP as the protocol lays it out: command, position, flags, server id, file."""

    def test_file_and_position(self) -> None:
        """A position start names its file and offset; flags 0 means a blocking stream."""
        payload = replication.dump_command(1234, Position("binlog.000042", 98765))
        assert payload[0] == 0x12
        assert struct.unpack_from("<IHI", payload, 1) == (98765, 0, 1234)
        assert payload[11:] == b"binlog.000042"

    def test_gtid_start_has_no_file(self) -> None:
        """A GTID start (MariaDB) sends offset 4 and an empty file name: the server uses
        @slave_connect_state instead."""
        payload = replication.dump_command(7, None)
        assert payload == bytes([0x12]) + struct.pack("<IHI", 4, 0, 7)


class TestHeartbeatPeriod:
    """The heartbeat asked of the server stays below the read timeout."""

    def test_configured_period(self) -> None:
        """A heartbeat well below the read timeout is asked as configured."""
        assert replication.heartbeat_period_s(_mysql(heartbeat_s=5.0, read_timeout_s=30.0)) == 5.0

    def test_capped_at_half_the_read_timeout(self) -> None:
        """A heartbeat longer than half the read timeout would let an idle stream time out."""
        assert replication.heartbeat_period_s(_mysql(heartbeat_s=50.0, read_timeout_s=30.0)) == 15.0
