"""Tests for cdc.ops.status's pure parts: binlog lag, the report and its rendering."""

from __future__ import annotations

from cdc import config
from cdc.ops.status import ServerState, binlog_lag, render_status, status_report
from cdc.records import Position
from cdc.store import EndpointCounts

T0 = 1_700_000_000.0
LOGS = (("mysql-bin.000001", 1000), ("mysql-bin.000002", 5000), ("mysql-bin.000003", 700))


class TestBinlogLag:
    """Lag in bytes and files from SHOW BINARY LOGS sizes; a purged file is flagged."""

    def test_same_file(self) -> None:
        """Bytes between the two positions."""
        lag = binlog_lag(Position("mysql-bin.000003", 300), Position("mysql-bin.000003", 700), LOGS)
        assert (lag.bytes, lag.files, lag.purged) == (400, 0, False)

    def test_across_files(self) -> None:
        """Rest of the checkpoint's file, whole files between, start of the current one."""
        lag = binlog_lag(Position("mysql-bin.000001", 400), Position("mysql-bin.000003", 700), LOGS)
        assert (lag.bytes, lag.files) == (600 + 5000 + 700, 2)

    def test_purged(self) -> None:
        """The checkpoint's file is gone from the server."""
        lag = binlog_lag(Position("mysql-bin.000000", 4), Position("mysql-bin.000003", 700), LOGS)
        assert lag.purged


class TestStatusReport:
    """The JSON document and its text rendering."""

    def test_unreachable_server(self) -> None:
        """Local state is reported; server fields say why not."""
        counts = [EndpointCounts("crm:443", pending=3, dead=1, oldest_pending_created_at=T0 - 90)]
        doc = status_report(
            config.Config(), Position("mysql-bin.000002", 10, "0-1-5"), counts,
            ServerState(reachable=False, error="refused"), None, T0,
        )  # fmt: skip
        assert doc["checkpoint"] == {"file": "mysql-bin.000002", "pos": 10, "gtid": "0-1-5"}
        assert doc["lag"] is None and doc["server"]["error"] == "refused"
        assert doc["totals"] == {
            "pending": 3, "in_flight": 0, "dead": 1, "delivered": 0, "oldest_pending_age_s": 90.0
        }  # fmt: skip
        text = render_status(doc)
        assert "not reachable" in text and "gtid 0-1-5" in text and "1.5m" in text

    def test_purged_checkpoint(self) -> None:
        """A purged checkpoint file is shown with the recovery procedure."""
        doc = status_report(
            config.Config(), Position("mysql-bin.000000", 4), [],
            ServerState(reachable=True, position=Position("mysql-bin.000003", 700), binlogs=LOGS), None, T0,
        )  # fmt: skip
        assert doc["lag"]["purged"] is True
        assert "replay --since" in render_status(doc)
