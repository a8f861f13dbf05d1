"""Tests for cdc.reader.schemahistory: prefix fitting, lookup by position, the fault's message."""

from __future__ import annotations

import pytest

from cdc.reader import rowdecode as rd
from cdc.reader.schemahistory import (
    ColumnInfo,
    SchemaHistory,
    ambiguous_message,
    columns_from_json,
    columns_to_json,
    fits,
)
from cdc.records import Position

ID = ColumnInfo("lead_id", "int", True, None)
DATE = ColumnInfo("entry_date", "datetime", False, None)
PHONE = ColumnInfo("phone_number", "varchar", False, "utf8mb4")
GENDER = ColumnInfo("gender", "enum", False, "utf8mb4", ("M", "F", "U"))
FLAG = ColumnInfo("new_flag", "varchar", False, "utf8mb4")
SCORE = ColumnInfo("score", "smallint", False, None)

V1 = (ID, DATE, PHONE, GENDER)
V2 = (*V1, FLAG)  # a column added at the end (VICIdial's upgrades)
V3 = (*V2, SCORE)
MIDDLE = (ID, FLAG, DATE, PHONE, GENDER)  # a column added after lead_id

T1 = (rd.T_LONG, rd.T_DATETIME2, rd.T_VARCHAR, rd.T_ENUM)
T2 = (*T1, rd.T_VARCHAR)
T3 = (*T2, rd.T_SHORT)

P = [Position("mysql-bin.000001", 100 * k) for k in range(10)]


class TestFits:
    """Which definitions a table map's column types can have been written with."""

    def test_whole_definition(self) -> None:
        """Same count, every type agrees."""
        assert fits(T1, V1)

    def test_prefix_when_columns_were_added_at_the_end(self) -> None:
        """A shorter row image reads with the definition's first columns."""
        assert fits(T1, V3) and fits(T2, V3)

    def test_more_columns_than_the_definition(self) -> None:
        """A column dropped since: the definition cannot describe the row."""
        assert not fits(T2, V1)

    def test_types_disagree(self) -> None:
        """A column added in the middle shifts the types: no prefix fits."""
        assert not fits(T1, MIDDLE)

    @pytest.mark.parametrize(
        ("data_type", "binlog_type"),
        [
            ("datetime", rd.T_DATETIME),
            ("timestamp", rd.T_TIMESTAMP2),
            ("char", rd.T_STRING),
            ("text", rd.T_BLOB),
            ("enum", rd.T_ENUM),
            ("decimal", rd.T_NEWDECIMAL),
            ("inet6", rd.T_STRING),  # not checkable: agrees
        ],
    )
    def test_type_families(self, data_type: str, binlog_type: int) -> None:
        """information_schema DATA_TYPEs agree with the binlog types they are written as."""
        assert fits((binlog_type,), (ColumnInfo("c", data_type, False, None),))

    def test_wrong_family(self) -> None:
        """An INT column is never a VARCHAR in the binlog."""
        assert not fits((rd.T_VARCHAR,), (ID,))


class TestHistory:
    """Definitions by table and position."""

    def test_lookup_by_position(self) -> None:
        """The latest definition at or before a position; before the first, the first."""
        h = SchemaHistory()
        h.add("vicidial_list", P[3], V1)
        h.add("vicidial_list", P[6], V2)
        assert h.at("vicidial_list", P[1]).columns == V1  # type: ignore[union-attr]
        assert h.at("vicidial_list", P[3]).columns == V1  # type: ignore[union-attr]
        assert h.at("vicidial_list", P[5]).columns == V1  # type: ignore[union-attr]
        assert h.at("vicidial_list", P[6]).columns == V2  # type: ignore[union-attr]
        assert h.at("vicidial_list", Position("mysql-bin.000002", 4)).columns == V2  # type: ignore[union-attr]
        assert h.at("other", P[6]) is None

    def test_adds_only_what_changes(self) -> None:
        """The same columns again, or none (table gone), add nothing; a new position does."""
        h = SchemaHistory()
        assert h.add("t", P[1], V1) is not None
        assert h.add("t", P[4], V1) is None
        assert h.add("t", P[5], ()) is None
        assert h.add("t", P[5], V2) is not None
        assert len(h) == 2
        assert [d.position for d in h.definitions("t")] == [P[1], P[5]]

    def test_positions_ignore_gtid(self) -> None:
        """A group end's GTID is not part of where a definition holds from."""
        h = SchemaHistory()
        added = h.add("t", Position(P[1].file, P[1].pos, "0-1-5"), V1)
        assert added is not None and added.position.gtid == ""

    def test_choose_prefix_of_the_definition_in_force(self) -> None:
        """Catching up: information_schema already shows later columns; old rows read as a prefix."""
        h = SchemaHistory()
        h.add("t", P[2], V3)  # read at the first DDL, after three of them ran
        chosen = h.choose("t", P[3], T2)
        assert chosen is not None and chosen.columns == V3

    def test_choose_the_definition_written_before_a_middle_column(self) -> None:
        """Rows from before a middle ADD COLUMN read with the stored old definition."""
        h = SchemaHistory()
        h.add("t", P[1], V1)
        h.add("t", P[5], MIDDLE)
        assert h.choose("t", P[3], T1).columns == V1  # type: ignore[union-attr]
        middle_types = (rd.T_LONG, rd.T_VARCHAR, rd.T_DATETIME2, rd.T_VARCHAR, rd.T_ENUM)
        assert h.choose("t", P[6], middle_types).columns == MIDDLE  # type: ignore[union-attr]

    def test_choose_another_exact_definition(self) -> None:
        """The definition in force does not fit; another known one with the same count does."""
        h = SchemaHistory()
        h.add("t", P[1], MIDDLE)
        h.add("t", P[5], V1)
        assert h.choose("t", P[6], T1).columns == V1  # type: ignore[union-attr]
        # In force at P[2] is MIDDLE, whose types do not fit; V1 (exact) does.
        assert h.choose("t", P[2], T1).columns == V1  # type: ignore[union-attr]

    def test_choose_nothing_when_no_definition_fits(self) -> None:
        """A column dropped and none known with that many: no guess."""
        h = SchemaHistory()
        h.add("t", P[1], V1)
        assert h.choose("t", P[2], T3) is None
        assert h.choose("unknown", P[2], T1) is None


class TestStoredForm:
    """Definitions are stored as JSON."""

    def test_round_trip(self) -> None:
        """Every field survives, non-ASCII labels included."""
        labels = ColumnInfo("état", "set", False, "latin1", ("é", "b"))
        columns = (*V1, labels, ColumnInfo("n", "int", False, None))
        assert columns_from_json(columns_to_json(columns)) == columns


class TestMessage:
    """The SCHEMA_AMBIGUOUS message names the cause and the way out."""

    def test_names_the_fix_and_the_resume_commands(self) -> None:
        """FULL metadata with versions, run --start at the given position, replay --since."""
        h = SchemaHistory()
        h.add("t", P[1], V1)
        text = ambiguous_message(
            "asterisk",
            "t",
            P[2],
            T3,
            h.definitions("t"),
            since="2026-01-02 03:04:05",
            resume=Position("mysql-bin.000009", 1234),
        )
        assert "asterisk.t" in text and "mysql-bin.000001:200" in text
        assert "binlog_row_metadata=FULL" in text and "10.5" in text and "8.0.1" in text
        assert "vicidial-cdc run --start mysql-bin.000009:1234" in text
        assert "vicidial-cdc replay --since \"2026-01-02 03:04:05\"" in text
