"""Unit tests for cdc.waiting (held leads) and cdc.reader.unreadable (unreadable custom tables)."""

from __future__ import annotations

from cdc.reader.unreadable import UnreadableTables, grant_statement
from cdc.records import ApiLead
from cdc.waiting import WaitingLead, WaitingLeads

T0 = 1_700_000_000.0


def lead(lead_id: int, list_id: int = 105) -> ApiLead:
    return ApiLead(lead_id, list_id, {}, None, 1000 + lead_id)


class TestWaitingLeads:
    """Waiting leads: kept by id, dumped for the store, expired by wall time."""

    def test_round_trip(self) -> None:
        """dumps/loads keep every field; None (nothing stored) is empty."""
        w = WaitingLeads()
        w.add([lead(1), lead(2, 106)], "table_unreadable", T0)
        again = WaitingLeads.loads(w.dumps())
        assert again.by_list() == {
            105: [WaitingLead(1, 105, 1001, T0, "table_unreadable")],
            106: [WaitingLead(2, 106, 1002, T0, "table_unreadable")],
        }
        assert len(WaitingLeads.loads(None)) == 0

    def test_first_wait_is_kept(self) -> None:
        """A lead added again (re-read after a restart) keeps its first ``since``."""
        w = WaitingLeads()
        w.add([lead(1)], "table_unreadable", T0)
        w.add([lead(1)], "table_unreadable", T0 + 500)
        assert w.expired(T0 + 600, 550) == [WaitingLead(1, 105, 1001, T0, "table_unreadable")]

    def test_counts_status_and_remove(self) -> None:
        """Waiting leads are counted and reported by reason with their tables and longest wait, and
        removed by id."""
        w = WaitingLeads()
        w.add([lead(1), lead(2)], "table_unreadable", T0)
        assert w.counts() == {"table_unreadable": 2}
        assert w.status(T0 + 30) == {
            "table_unreadable": {"leads": 2, "tables": ["custom_105"], "longest_wait_s": 30.0}
        }
        w.remove([1, 2, 3])
        assert len(w) == 0 and w.dumps() == "[]"


class TestUnreadableTables:
    """Only custom tables without columns and without binlog names are unreadable; retried later."""

    def test_custom_table_without_columns(self) -> None:
        """Marked, due again after retry_s, cleared once its columns are visible."""
        u = UnreadableTables("asterisk", "cdc", 60.0)
        assert u.update("custom_105", False, 100.0)
        assert "custom_105" in u and u
        assert not u.retry_due("custom_105", 159.0)
        assert u.retry_due("custom_105", 160.0)
        assert not u.update("custom_105", True, 160.0)
        assert "custom_105" not in u and not u

    def test_other_cases_are_readable(self) -> None:
        """A readable table, a non-custom table: never marked (the reader stops on those)."""
        u = UnreadableTables("asterisk", "cdc", 60.0)
        assert not u.update("custom_105", True, 0.0)
        assert not u.update("vicidial_list", False, 0.0)
        assert not u.retry_due("custom_105", 1e9)

    def test_grant_statement(self) -> None:
        """The GRANT statement names the database, the custom table and the account."""
        assert grant_statement("asterisk", "custom_105", "cdc") == (
            "GRANT SELECT ON `asterisk`.`custom_105` TO 'cdc'@'<host>'"
        )
