"""Tests for cdc.ops.operator's pure parts: durations, URL redaction, binlog lag, rendering."""

from __future__ import annotations

import pytest

from cdc import config
from cdc.cli import main
from cdc.errors import ConfigError, ExitCode
from cdc.ops.operator import (
    DeadSelector,
    ServerState,
    binlog_lag,
    parse_duration,
    render_status,
    status_report,
    url_host_path,
)
from cdc.records import Position
from cdc.store import EndpointCounts

T0 = 1_700_000_000.0
LOGS = (("mysql-bin.000001", 1000), ("mysql-bin.000002", 5000), ("mysql-bin.000003", 700))


class TestParseDuration:
    """Durations are <number><s|m|h|d|w>, summed; anything else is a ConfigError."""

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("90s", 90), ("30m", 1800), ("2h", 7200), ("3d", 259200), ("1w", 604800), ("1h30m", 5400),
         ("1.5h", 5400), (" 2H ", 7200)],
    )  # fmt: skip
    def test_valid(self, text: str, seconds: float) -> None:
        """Each unit and a sum of units."""
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "2", "h", "2x", "2h-", "-2h", "yesterday", "2h 3"])
    def test_invalid(self, text: str) -> None:
        """No unit, unknown unit, trailing junk."""
        with pytest.raises(ConfigError):
            parse_duration(text)


class TestUrlHostPath:
    """Only host[:port] and path survive: no credentials, query or fragment."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://crm.example/hook?ph=3125551234&fn=Jo", ("crm.example", "/hook")),
            ("https://u:secret@crm.example:8443/a/b?x=1#f", ("crm.example:8443", "/a/b")),
            ("http://[::1]:9000/x?y", ("[::1]:9000", "/x")),
            ("http://host:notaport/x", ("", "")),
        ],
    )
    def test_redaction(self, url: str, expected: tuple[str, str]) -> None:
        """The examples from the docstring and a malformed port."""
        assert url_host_path(url) == expected


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


class TestDeadSelector:
    """An empty selector selects nothing by itself (retry/purge then need --all)."""

    def test_is_empty(self) -> None:
        """Any filter makes it non-empty; --all alone does not."""
        assert DeadSelector().is_empty() and DeadSelector(all=True).is_empty()
        assert not DeadSelector(older_than_s=0.0).is_empty()
        assert DeadSelector(older_than_s=60.0).older_than(T0) == T0 - 60


class TestExitCodes:
    """One set of exit codes for every command, the values the README and runbook name."""

    def test_documented_values(self) -> None:
        """0 done, 1 error, 2 usage/config, 3 binlog purged, 4 start refused, 130 Ctrl-C."""
        assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 130]

    def test_cli_maps_a_config_error_to_usage(self) -> None:
        """A config error exits with :attr:`ExitCode.USAGE`, whichever command raised it."""
        assert main(["check", "--max-downtime", "1y"]) == ExitCode.USAGE
