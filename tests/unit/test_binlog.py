"""Pure parts of the reader: ENUM parsing, value normalization, purge message."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from cdc import vicidb
from cdc.config import MysqlConfig
from cdc.reader import library
from cdc.reader.position import purged_message
from cdc.reader.schema import SchemaCache, TableSchemas, WatchedTables, always_watched
from cdc.reader.source import Feed
from cdc.reader.unreadable import UnreadableTables
from cdc.records import Position, Value


class TestEnumLabels:
    """ENUM labels are parsed from information_schema's COLUMN_TYPE."""

    def test_labels(self) -> None:
        """Quotes, doubled quotes and commas inside labels."""
        assert vicidb.enum_labels("enum('M','F','U')") == ("M", "F", "U")
        assert vicidb.enum_labels("enum('it''s','a,b','')") == ("it's", "a,b", "")
        assert vicidb.enum_labels("enum('dispo','apinewlead','')") == ("dispo", "apinewlead", "")
        assert vicidb.enum_labels("varchar(20)") == ()


def _column(name: str, data_type: str) -> Any:
    return SimpleNamespace(name=name, data_type=data_type, set_values=None)


class TestNormalize:
    """Library values become our values; undecodable text is reported, never dropped."""

    def _feed(self, errors: list[tuple[str, Value]]) -> Feed:
        mysql = MysqlConfig()
        schemas = TableSchemas(mysql.database, WatchedTables(["vicidial_list"]), SchemaCache(mysql))
        return Feed(
            mysql,
            schemas,
            UnreadableTables(mysql.database, mysql.user, 60.0),
            Position("binlog.000001", 4),
            lambda _batch: True,
            on_decode_error=lambda table, lead_id: errors.append((table, lead_id)),
        )

    def test_zero_dates_and_nulls(self) -> None:
        """A zero DATE is '0000-00-00'; a NULL stays None."""
        feed = self._feed([])
        cols = [
            _column("date_of_birth", "date"),
            _column("last_local_call_time", "datetime"),
            _column("email", "varchar"),
        ]
        values = {"date_of_birth": None, "last_local_call_time": None, "email": None}
        sources = {
            "date_of_birth": "out of date range",
            "last_local_call_time": "out of datetime range",
            "email": "null",
        }
        out = library.normalize("vicidial_list", values, sources, cols, feed.decode_error)
        assert out == {
            "date_of_birth": "0000-00-00",
            "last_local_call_time": "0000-00-00 00:00:00",
            "email": None,
        }

    def test_undecodable_reported_with_table_and_lead(self) -> None:
        """A surrogate-escaped byte counts as a decode error with table and lead id, value kept."""
        errors: list[tuple[str, Value]] = []
        feed = self._feed(errors)
        cols = [_column("lead_id", "int"), _column("first_name", "varchar")]
        bad = b"Jos\xe9".decode("utf-8", "surrogateescape")
        values = {"lead_id": 77, "first_name": bad}
        out = library.normalize("vicidial_list", values, {}, cols, feed.decode_error)
        assert out["first_name"] == bad
        assert errors == [("vicidial_list", 77)]
        assert feed.stats.decode_errors == 1


class TestPurgedMessage:
    """The purge error names the file and the recovery."""

    def test_message(self) -> None:
        """File, oldest file on the server, replay and run --start current."""
        msg = purged_message(Position("binlog.000003", 900), ["binlog.000007", "binlog.000008"])
        assert "binlog.000003" in msg and "binlog.000007" in msg
        assert "replay --since" in msg and "--start current" in msg


class TestWatchedTables:
    """custom_<list_id> tables pass the reader's filter without being listed."""

    @pytest.mark.parametrize(
        ("table", "watched"),
        [
            ("vicidial_list", True),
            ("custom_102", True),
            ("custom_7", True),
            ("custom_", False),
            ("custom_12a", False),
            ("custom_١٢", False),  # non-ASCII digits are not a list_id
            ("xcustom_1", False),
            ("vicidial_log", False),
        ],
    )
    def test_membership(self, table: str, watched: bool) -> None:
        """vicidial_list and custom_<digits> tables are watched; custom tables are always watched, other
        names never."""
        tables = WatchedTables({"vicidial_list"})
        assert (table in tables) is watched
        assert always_watched(table) is (watched and table != "vicidial_list")
