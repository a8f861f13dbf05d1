"""How long the server keeps binlogs: one reading for the service's headroom gauge and for check."""

from __future__ import annotations

import pytest

from cdc.reader.serverinfo import binlog_retention_s


class TestBinlogRetention:
    """``binlog_retention_s`` reads MariaDB's and MySQL's two expiry variables the same way everywhere."""

    @pytest.mark.parametrize(
        ("variables", "expected"),
        [
            ({"binlog_expire_logs_seconds": "86400", "expire_logs_days": "1"}, 86400.0),
            ({"binlog_expire_logs_seconds": "3600", "expire_logs_days": "7"}, 3600.0),
            ({"expire_logs_days": "2"}, 172800.0),
            ({"binlog_expire_logs_seconds": "0", "expire_logs_days": "0"}, 0.0),
            ({"binlog_expire_logs_seconds": "", "expire_logs_days": "3"}, 259200.0),
            ({}, None),
            ({"binlog_expire_logs_seconds": "junk"}, None),
        ],
    )
    def test_reading(self, variables: dict[str, str], expected: float | None) -> None:
        """Seconds win when set; days count when seconds are 0 or absent; neither known is None."""
        assert binlog_retention_s(variables) == expected

    def test_zero_seconds_does_not_hide_days(self) -> None:
        """binlog_expire_logs_seconds=0 with expire_logs_days=7 still purges after 7 days (MySQL 8)."""
        assert binlog_retention_s({"binlog_expire_logs_seconds": "0", "expire_logs_days": "7"}) == 7 * 86400
