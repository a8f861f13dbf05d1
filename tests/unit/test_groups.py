"""The group assembler both binlog sources hand their rows through (cdc.reader.groups)."""

from __future__ import annotations

from cdc.config import MysqlConfig
from cdc.reader.groups import GroupAssembler, gtid_text
from cdc.reader.schema import SchemaCache, TableSchemas, WatchedTables
from cdc.reader.source import Feed
from cdc.reader.unreadable import UnreadableTables
from cdc.records import GroupEnd, Op, Position, RowChange, SchemaChange, SourceItem, UnreadableRows


def _row(lead_id: int, log_pos: int) -> tuple[str, str, Op, None, dict[str, object], int, int]:
    return ("asterisk", "vicidial_list", Op.INSERT, None, {"lead_id": lead_id}, 100, log_pos)


class TestGroupAssembler:
    """Rows leave with their group's end and thread id; empty groups collapse to the last end."""

    def test_rows_then_group_end_with_the_groups_thread(self) -> None:
        """A group's rows become RowChanges carrying the thread id known at its end, then its GroupEnd."""
        group = GroupAssembler("binlog.000001")
        group.begin((0, 1, 7))
        group.rows.append(_row(1, 300))
        group.finish(400, 100, thread=42)
        batch, end = group.take()
        assert [type(i) for i in batch] == [RowChange, GroupEnd]
        change, group_end = batch
        assert isinstance(change, RowChange) and change.thread_id == 42 and change.log_file == "binlog.000001"
        assert isinstance(group_end, GroupEnd)
        assert group_end.position == Position("binlog.000001", 400, "0-1-7")
        assert end == group_end.position

    def test_empty_groups_collapse_to_the_last_end(self) -> None:
        """A run of groups without rows (unwatched noise) leaves one GroupEnd, the latest."""
        group = GroupAssembler("binlog.000001")
        for pos in (100, 200, 300):
            group.finish(pos, 1, thread=9)
        batch, end = group.take()
        assert [i.position.pos for i in batch if isinstance(i, GroupEnd)] == [300]
        assert end == Position("binlog.000001", 300)
        assert group.take() == ([], None)

    def test_gtid_drops_rows_of_a_group_that_did_not_end(self) -> None:
        """A GTID event opens a new group: rows of one that never ended are not handed over."""
        group = GroupAssembler("binlog.000001")
        group.rows.append(_row(1, 300))
        group.begin((0, 1, 8))
        group.finish(500, 1, thread=3)
        batch, _ = group.take()
        assert not any(isinstance(i, RowChange) for i in batch)

    def test_schema_change_after_the_group_end_before_it(self) -> None:
        """A SchemaChange keeps the previous group's end before it, and its own group's end after it."""
        group = GroupAssembler("binlog.000001")
        group.finish(100, 1, thread=1)
        group.add([SchemaChange("asterisk", "vicidial_list", 2)])
        group.finish(200, 2, thread=1)
        batch, end = group.take()
        assert [type(i) for i in batch] == [GroupEnd, SchemaChange, GroupEnd]
        assert end == Position("binlog.000001", 200)

    def test_unreadable_rows_keep_event_order_and_get_the_thread(self) -> None:
        """Unreadable rows travel with the group, in event order, with its thread id."""
        group = GroupAssembler("binlog.000001")
        group.rows.append(_row(1, 300))
        group.add_unreadable(UnreadableRows("asterisk", "custom_9", Op.INSERT, 2, "table_unreadable", 100))
        group.finish(400, 100, thread=5)
        batch, _ = group.take()
        assert [type(i) for i in batch] == [RowChange, UnreadableRows, GroupEnd]
        assert all(i.thread_id == 5 for i in batch[:2] if isinstance(i, RowChange | UnreadableRows))

    def test_real_rotation_between_groups_is_a_group_end(self) -> None:
        """A real rotation makes the new file's start a resume position; the one a connect
        announces (timestamp 0) does not."""
        group = GroupAssembler("binlog.000001")
        group.rotate("binlog.000002", 4, real=False, timestamp=0)
        assert not group.pending()
        group.rotate("binlog.000003", 4, real=True, timestamp=7)
        batch, end = group.take()
        assert end == Position("binlog.000003", 4) and len(batch) == 1

    def test_gtid_text(self) -> None:
        """MariaDB, MySQL and already-text GTIDs as a Position keeps them."""
        assert gtid_text((0, 1, 42)) == "0-1-42"
        assert gtid_text(("mysql", bytes(range(16)), 5)) == "00010203-0405-0607-0809-0a0b0c0d0e0f:5"
        assert gtid_text("0-1-9") == "0-1-9"
        assert gtid_text(None) == ""


class TestFeed:
    """The resume position moves when a batch is handed over, not when a group end is read."""

    def _feed(self, sent: list[list[SourceItem]]) -> Feed:
        mysql = MysqlConfig()
        schemas = TableSchemas(mysql.database, WatchedTables(["vicidial_list"]), SchemaCache(mysql))

        def send(batch: list[SourceItem]) -> bool:
            sent.append(batch)
            return True

        unreadable = UnreadableTables(mysql.database, mysql.user, 60.0)
        return Feed(mysql, schemas, unreadable, Position("binlog.000001", 4), send)

    def test_resume_moves_at_hand_over(self) -> None:
        """Until a batch with a group end is handed over, a reconnect starts where the last one did."""
        sent: list[list[SourceItem]] = []
        feed = self._feed(sent)
        group = GroupAssembler("binlog.000001")
        group.finish(900, 1, thread=1)
        assert feed.resume == Position("binlog.000001", 4)
        assert feed.hand_over(*group.take())
        assert feed.resume == Position("binlog.000001", 900) == feed.stats.position
        assert len(sent) == 1

    def test_rows_counted_per_table_and_op(self) -> None:
        """Row counts feed the rows metric through ``on_event`` and the statistics."""
        feed = self._feed([])
        feed.count_rows("vicidial_list", "insert", 3)
        feed.count_rows("vicidial_list", "insert", 2)
        assert feed.stats.rows == {("vicidial_list", "insert"): 5}

    def test_rows_reported_summed_with_the_next_batch(self) -> None:
        """``on_event`` gets the rows read since the last batch, summed per table and op,
        when a batch is handed over (once per batch, not once per rows event)."""
        events: list[tuple[str, str, int]] = []
        mysql = MysqlConfig()
        schemas = TableSchemas(mysql.database, WatchedTables(["vicidial_list"]), SchemaCache(mysql))
        unreadable = UnreadableTables(mysql.database, mysql.user, 60.0)
        feed = Feed(
            mysql,
            schemas,
            unreadable,
            Position("binlog.000001", 4),
            lambda _batch: True,
            on_event=lambda table, op, rows: events.append((table, op, rows)),
        )
        feed.count_rows("vicidial_list", "insert", 3)
        feed.count_rows("vicidial_api_log", "insert", 1)
        feed.count_rows("vicidial_list", "insert", 2)
        assert events == []
        assert feed.hand_over([], None)
        assert events == [("vicidial_list", "insert", 5), ("vicidial_api_log", "insert", 1)]
        assert feed.hand_over([], None)
        assert len(events) == 2
        feed.count_rows("vicidial_list", "update", 1)
        feed.report_rows()
        assert events[2:] == [("vicidial_list", "update", 1)]
