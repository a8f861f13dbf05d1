"""Tests for cdc.ops.replay's pure parts: lead-id arguments, selections, the report."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from cdc.errors import ConfigError
from cdc.ops.replay import LeadIdRange, ReplayReport, Selection, _data_lead_id, parse_lead_ids, render_report
from cdc.records import Value
from cdc.vicidb import Column, binlog_row


class TestParseLeadIds:
    """Ids and FIRST-LAST ranges, comma or space separated; ranges merged."""

    def test_ids_and_ranges(self) -> None:
        """Lone ids inside a range are absorbed; touching ranges merge."""
        ids, ranges = parse_lead_ids(["7", "100-200", "150", "201-210,5", "9"])
        assert ids == (5, 7, 9)
        assert ranges == (LeadIdRange(100, 210),)

    @pytest.mark.parametrize("value", ["", "x", "5-", "-5", "10-5", "1.5"])
    def test_invalid(self, value: str) -> None:
        """Anything that is not an id or an increasing range."""
        with pytest.raises(ConfigError):
            parse_lead_ids([value])


class TestSelection:
    """Either lead ids or --since; --until only with --since."""

    def test_exclusive(self) -> None:
        """Both, neither, or --until alone are errors."""
        with pytest.raises(ConfigError):
            Selection(lead_ids=(1,), since="2025-01-01 00:00:00")
        with pytest.raises(ConfigError):
            Selection()
        with pytest.raises(ConfigError):
            Selection(ranges=(LeadIdRange(1, 2),), until="2025-01-01 00:00:00")

    def test_describe(self) -> None:
        """The report's first line."""
        sel = Selection(since="2025-01-01 00:00:00", until="2025-01-02 00:00:00", lists=frozenset({102, 101}))
        assert sel.describe() == "api_date >= 2025-01-01 00:00:00 and < 2025-01-02 00:00:00 in list 101, 102"


class TestApiLogData:
    """The lead id is the third | field of add_lead's data."""

    @pytest.mark.parametrize(
        ("data", "lead_id"),
        [("3125551234|101|77|-5.00", 77), ("3125551234|101|77", 77), ("3125551234|101", None), (None, None),
         ("p|l|x|g", None)],
    )  # fmt: skip
    def test_data(self, data: str | None, lead_id: int | None) -> None:
        """Well-formed, short and malformed rows."""
        assert _data_lead_id(data) == lead_id


class TestReport:
    """Counts print in a fixed order; --force shows what was sent again."""

    def test_render(self) -> None:
        """Force run with a skip."""
        report = ReplayReport(selection="lead_id 1-9", dry_run=False, force=True, found=3, deliveries=2,
                              enqueued=1, already_present=1, requeued=1)  # fmt: skip
        report.skipped["no_url"] += 1
        text = render_report(report)
        assert "found:            3 API leads" in text
        assert "already present:  1 (sent again: 1; in flight, left alone: 0)" in text
        assert "skipped:          no_url=1" in text


class TestClusters:
    """Entry dates are grouped into api_date ranges: neighbours closer than the gap share one."""

    def test_clusters(self) -> None:
        """Two close dates and a far one give two ranges, each from first to last."""
        import datetime as dt

        from cdc.ops.replay import _clusters

        t = dt.datetime(2025, 6, 1, 12, 0, 0)
        times = [t + dt.timedelta(hours=30), t, t + dt.timedelta(minutes=50)]
        assert _clusters(times, 7200) == [
            (t, t + dt.timedelta(minutes=50)),
            (t + dt.timedelta(hours=30), t + dt.timedelta(hours=30)),
        ]


class TestBinlogRow:
    """vicidb.binlog_row: a SELECTed row gets the binlog reader's values, in the row's order."""

    COLUMNS = (
        Column("lead_id", "int"),
        Column("entry_date", "datetime"),
        Column("modify_date", "timestamp"),
        Column("date_of_birth", "date"),
        Column("last_local_call_time", "datetime"),
        Column("gmt_offset_now", "decimal"),
        Column("call_len", "time"),
    )

    def test_values_and_order(self) -> None:
        """DATETIME/DATE/TIME text → objects; TIMESTAMP epoch → naive UTC; zero dates stay text."""
        row = {
            "lead_id": 7,
            "entry_date": "2025-03-04 05:06:07",
            "modify_date": 1_741_086_367,
            "date_of_birth": "0000-00-00",
            "last_local_call_time": "2008-01-01 00:00:00",
            "gmt_offset_now": decimal.Decimal("-6.00"),
            "call_len": "-01:02:03.5",
            "cdc_entry_epoch": 1_741_064_767,
        }
        out = binlog_row(row, self.COLUMNS)
        assert list(out) == list(row)
        assert out == {
            "lead_id": 7,
            "entry_date": dt.datetime(2025, 3, 4, 5, 6, 7),
            "modify_date": dt.datetime(2025, 3, 4, 11, 6, 7),
            "date_of_birth": "0000-00-00",
            "last_local_call_time": dt.datetime(2008, 1, 1),
            "gmt_offset_now": decimal.Decimal("-6.00"),
            "call_len": -dt.timedelta(hours=1, minutes=2, seconds=3, microseconds=500_000),
            "cdc_entry_epoch": 1_741_064_767,
        }

    @pytest.mark.parametrize(
        ("column", "value", "expected"),
        [
            (Column("d", "datetime"), "0000-00-00 00:00:00.000000", "0000-00-00 00:00:00"),
            (Column("d", "datetime"), "1980-00-00 10:00:00", "1980-00-00 10:00:00"),
            (Column("d", "datetime"), "2025-01-02 03:04:05.25", dt.datetime(2025, 1, 2, 3, 4, 5, 250_000)),
            (Column("d", "date"), "1980-02-29", dt.date(1980, 2, 29)),
            (Column("d", "date"), "1980-00-00", "1980-00-00"),
            (Column("d", "timestamp"), decimal.Decimal("1.25"), dt.datetime(1970, 1, 1, 0, 0, 1, 250_000)),
            (Column("d", "timestamp"), None, None),
            (Column("d", "varchar"), "2025-01-02 03:04:05", "2025-01-02 03:04:05"),
        ],
    )
    def test_edges(self, column: Column, value: Value, expected: Value) -> None:
        """Zero, partial and fractional dates and timestamps read by SELECT come back as the binlog reader
        gives them."""
        assert binlog_row({"d": value}, (column,)) == {"d": expected}
