"""Unit tests for cdc.detect: matching, holding for custom fields, expiry, checkpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest

from cdc.detect import Detector, LateMatch, custom_table_list_id, is_detect_table, row_size_bytes
from cdc.records import ApiLead, Op, Position, RowChange, Skipped, SkipReason, Value

T0 = 1_700_000_000


def pos(n: int) -> Position:
    return Position("mariadb-bin.000007", n)


def rc(
    table: str,
    op: Op,
    ts: int,
    *,
    before: Mapping[str, Value] | None = None,
    after: Mapping[str, Value] | None = None,
    thread_id: int = 0,
) -> RowChange:
    return RowChange(
        schema="asterisk",
        table=table,
        op=op,
        before=before,
        after=after,
        timestamp=ts,
        thread_id=thread_id,
    )


def lead_row(lead_id: int, list_id: int = 101, **extra: Value) -> dict[str, Value]:
    row: dict[str, Value] = {
        "lead_id": lead_id,
        "list_id": list_id,
        "entry_date": dt.datetime(2025, 3, 4, 5, 6, 7),
        "status": "NEW",
        "user": "apiuser",
        "phone_number": "3125550100",
        "first_name": "Ann",
        "entry_list_id": 0,
    }
    row.update(extra)
    return row


def insert(lead_id: int, ts: int = T0, list_id: int = 101, thread_id: int = 0, **extra: Value) -> RowChange:
    return rc("vicidial_list", Op.INSERT, ts, after=lead_row(lead_id, list_id, **extra), thread_id=thread_id)


def update(lead_id: int, ts: int = T0, list_id: int = 101, **changes: Value) -> RowChange:
    before = lead_row(lead_id, list_id)
    return rc("vicidial_list", Op.UPDATE, ts, before=before, after={**before, **changes})


def delete(lead_id: int, ts: int = T0) -> RowChange:
    return rc("vicidial_list", Op.DELETE, ts, before=lead_row(lead_id))


def api_log(
    data: Value,
    *,
    function: str = "add_lead",
    result: str = "SUCCESS",
    reason: str = "add_lead LEAD HAS BEEN ADDED",
    ts: int = T0,
) -> RowChange:
    row: dict[str, Value] = {
        "api_id": 1,
        "function": function,
        "result": result,
        "result_reason": reason,
        "data": data,
    }
    return rc("vicidial_api_log", Op.INSERT, ts, after=row)


def added(lead_id: int, list_id: int = 101, ts: int = T0) -> RowChange:
    return api_log(f"3125550100|{list_id}|{lead_id}|-5.00", ts=ts)


def custom_notice(lead_id: int, list_id: int = 101, ts: int = T0, outcome: str = "VALUES ADDED") -> RowChange:
    return api_log(
        f"3125550100|{lead_id}|{list_id}",
        result="NOTICE",
        reason=f"add_lead CUSTOM FIELDS {outcome}",
        ts=ts,
    )


def custom_insert(lead_id: int, list_id: int = 101, ts: int = T0, **values: Value) -> RowChange:
    return rc(f"custom_{list_id}", Op.INSERT, ts, after={"lead_id": lead_id, **values})


class Feeder:
    """Feeds a detector like the pipeline does, tracking group ends as positions."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector
        self.pos = 100
        self.leads: list[ApiLead] = []

    def __call__(self, *changes: RowChange) -> list[ApiLead]:
        out: list[ApiLead] = []
        for change in changes:
            out += self.detector.feed(change, pos(self.pos), 0.5)
            self.pos += 100  # every MyISAM statement is its own group
        self.leads += out
        return out


def holding(list_ids: set[int]) -> Detector:
    return Detector(needs_custom=lambda list_id: list_id in list_ids, custom_wait_s=10, match_window_s=30)


class TestMatch:
    """An insert is released when its add_lead SUCCESS api_log row names its lead_id."""

    def test_insert_then_add_lead(self) -> None:
        """An insert followed by its add_lead api_log row is released as one lead with the insert's data,
        time and thread."""
        det = Detector()
        assert det.feed(insert(7, ts=T0, thread_id=42), pos(100), 12.5) == []
        [lead] = det.feed(added(7, ts=T0 + 1), pos(200), 13.0)
        assert (lead.lead_id, lead.list_id, lead.inserted_at) == (7, 101, T0)
        assert lead.seen_monotonic == 12.5
        assert lead.thread_id == 42
        assert lead.custom is None
        assert lead.lead["first_name"] == "Ann"

    def test_interleaved_calls_match_by_data(self) -> None:
        """Interleaved add_lead calls are matched to their own inserts by the api_log data, in api_log
        order."""
        feed = Feeder(Detector())
        feed(insert(1), insert(2), insert(3))
        assert [x.lead_id for x in feed(added(3), added(1))] == [3, 1]
        assert [x.lead_id for x in feed(added(2))] == [2]

    def test_update_before_match_applied(self) -> None:
        """An UPDATE of a waiting insert is applied before the lead is released."""
        feed = Feeder(Detector())
        feed(insert(1), update(1, first_name="Bob"))
        [lead] = feed(added(1))
        assert lead.lead["first_name"] == "Bob"

    def test_partial_after_image_merged(self) -> None:
        """A partial after-image (only changed columns) is merged into the waiting row."""
        feed = Feeder(Detector())
        feed(insert(1))
        feed(rc("vicidial_list", Op.UPDATE, T0, before={"lead_id": 1}, after={"status": "CBHOLD"}))
        [lead] = feed(added(1))
        assert (lead.lead["status"], lead.lead["first_name"]) == ("CBHOLD", "Ann")

    def test_list_change_before_match(self) -> None:
        """A list change before the match releases the lead on its new list."""
        feed = Feeder(Detector())
        feed(insert(1), update(1, list_id=202))
        [lead] = feed(added(1))
        assert lead.list_id == 202

    def test_update_after_release_ignored(self) -> None:
        """An UPDATE after the lead was released does not change the released lead."""
        feed = Feeder(Detector())
        feed(insert(1))
        [lead] = feed(added(1))
        feed(update(1, first_name="Late"))
        assert lead.lead["first_name"] == "Ann"

    def test_released_lead_is_read_only(self) -> None:
        """A released lead's row cannot be modified."""
        feed = Feeder(Detector())
        feed(insert(1))
        [lead] = feed(added(1))
        with pytest.raises(TypeError):
            lead.lead["first_name"] = "x"  # type: ignore[index]

    def test_orphan_match(self) -> None:
        """An add_lead row without a waiting insert sends nothing and counts an orphan match."""
        det = Detector()
        assert det.feed(added(99), pos(1)) == []
        assert det.statistics().orphan_matches == 1

    @pytest.mark.parametrize(
        "change",
        [
            api_log("3125550100|101"),
            api_log("3125550100|101|abc|-5.00"),
            api_log(""),
            api_log(None),
            api_log(12345),
        ],
    )
    def test_malformed_data_tolerated(self, change: RowChange) -> None:
        """An api_log row with malformed data is counted and leaves the waiting insert pending."""
        det = Detector()
        det.feed(insert(1), pos(1))
        assert det.feed(change, pos(2)) == []
        stats = det.statistics()
        assert (stats.pending, stats.malformed) == (1, 1)

    def test_bytes_columns(self) -> None:
        """api_log columns that arrive as bytes match like text."""
        det = Detector()
        det.feed(insert(1), pos(1))
        row: dict[str, Value] = {
            "function": b"add_lead",
            "result": b"SUCCESS",
            "result_reason": b"add_lead LEAD HAS BEEN ADDED",
            "data": b"3125550100|101|1|-5.00",
        }
        assert [x.lead_id for x in det.feed(rc("vicidial_api_log", Op.INSERT, T0, after=row), pos(2))] == [1]

    @pytest.mark.parametrize(
        "change",
        [
            api_log("3125550100|101|1|-5.00", result="ERROR", reason="add_lead INVALID PHONE NUMBER"),
            api_log(
                "3125550100|101|1|-5.00", function="update_lead", reason="update_lead LEAD HAS BEEN UPDATED"
            ),
            api_log("3125550100|101|1|-5.00", function="add_list"),
            api_log("1|1", result="NOTICE", reason="add_lead MULTI-ALT-PHONE NUMBERS LOADED"),
        ],
    )
    def test_other_api_log_rows_do_not_match(self, change: RowChange) -> None:
        """api_log rows of other functions or results do not match a waiting insert."""
        det = Detector()
        det.feed(insert(1), pos(1))
        assert det.feed(change, pos(2)) == []
        assert det.statistics().pending == 1

    def test_lead_id_as_text_and_whitespace(self) -> None:
        """A lead id given as text with spaces in the api_log data still matches."""
        det = Detector()
        det.feed(rc("vicidial_list", Op.INSERT, T0, after={**lead_row(0), "lead_id": "5"}), pos(1))
        assert [x.lead_id for x in det.feed(api_log("3125550100|101| 5 |-5.00"), pos(2))] == [5]

    def test_insert_without_lead_id(self) -> None:
        """An insert without a lead_id is counted as malformed and not kept."""
        det = Detector()
        det.feed(rc("vicidial_list", Op.INSERT, T0, after={"list_id": 1}), pos(1))
        stats = det.statistics()
        assert (stats.pending, stats.malformed, stats.inserts) == (0, 1, 0)

    def test_unwatched_tables_ignored(self) -> None:
        """Rows of unwatched tables are ignored."""
        det = Detector()
        assert det.feed(rc("vicidial_live_agents", Op.INSERT, T0, after={"lead_id": 1}), pos(1)) == []
        assert det.feed(rc("custom_fields_x", Op.INSERT, T0, after={"lead_id": 1}), pos(1)) == []
        assert det.statistics().inserts == 0

    def test_table_helpers(self) -> None:
        """custom_<list_id> names give their list id; only detect tables are watched."""
        assert custom_table_list_id("custom_101") == 101
        assert custom_table_list_id("custom_") is None
        assert custom_table_list_id("custom_1a") is None
        assert custom_table_list_id("vicidial_list") is None
        assert is_detect_table("vicidial_api_log") and is_detect_table("custom_7")
        assert not is_detect_table("vicidial_users")


class TestUpdateLeadInsert:
    """An update_lead insert_if_not_found lead is skipped, never sent."""

    def test_skipped(self) -> None:
        """An update_lead insert_if_not_found insert is skipped with its own reason, once, and pins no
        checkpoint."""
        det = Detector()
        det.feed(insert(1), pos(1))
        row = api_log(
            "3125550100|101|1|-5.00", function="update_lead", reason="update_lead LEAD HAS BEEN ADDED"
        )
        assert det.feed(row, pos(2)) == []
        leads, skipped = det.expire(T0)
        assert leads == []
        assert skipped == [Skipped(1, 101, SkipReason.UPDATE_LEAD_INSERT)]
        assert det.statistics().update_lead_inserts == 1
        assert det.min_resume_position() is None
        assert det.expire(T0) == ([], [])  # handed out once


class TestExpiry:
    """Unmatched inserts become NOT_API after match_window_s of binlog time."""

    def test_expires_strictly_after_window(self) -> None:
        """An unmatched insert expires only strictly after the match window, as not_api."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0), pos(1))
        assert det.expire(T0 + 30) == ([], [])
        assert det.expire(T0 + 31) == ([], [Skipped(1, 101, SkipReason.NOT_API)])
        assert det.statistics().not_api == 1

    def test_match_after_expiry_is_orphan(self) -> None:
        """An add_lead row that arrives after its insert expired is an orphan match."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0), pos(1))
        det.expire(T0 + 100)
        assert det.feed(added(1, ts=T0 + 100), pos(2)) == []
        assert det.statistics().orphan_matches == 1

    def test_only_old_entries_expire_in_order(self) -> None:
        """Expiry removes only entries older than the window, oldest first."""
        det = Detector(match_window_s=30)
        for i in range(5):
            det.feed(insert(i, ts=T0 + 10 * i), pos(i + 1))
        _, skipped = det.expire(T0 + 51)
        assert [s.lead_id for s in skipped] == [0, 1, 2]
        assert det.statistics().pending == 2

    def test_clock_never_goes_back(self) -> None:
        """The binlog clock never goes back: an older statement timestamp later in the binlog expires with
        the newer one."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0 + 100), pos(1))
        det.feed(insert(2, ts=T0), pos(2))  # an older statement timestamp, later in the binlog
        _, skipped = det.expire(T0 + 131)
        assert [s.lead_id for s in skipped] == [1, 2]

    def test_now_binlog_overrides_timestamp(self) -> None:
        """now_binlog, when given, sets the insert's clock instead of its statement timestamp."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0), pos(1), now_binlog=T0 + 50)
        assert det.expire(T0 + 60) == ([], [])
        assert det.expire(T0 + 81)[1] == [Skipped(1, 101, SkipReason.NOT_API)]

    def test_reused_lead_id_replaces(self) -> None:
        """A reused lead id replaces the waiting insert; the old one is skipped as not_api."""
        det = Detector()
        det.feed(insert(1, list_id=101), pos(1))
        det.feed(insert(1, list_id=202), pos(2))
        [lead] = det.feed(added(1, list_id=202), pos(3))
        assert lead.list_id == 202
        assert det.expire(T0)[1] == [Skipped(1, 101, SkipReason.NOT_API)]


class TestOverflow:
    """A full pending buffer evicts its oldest unmatched insert as OVERFLOW."""

    def test_evicts_oldest(self) -> None:
        """Past max_pending the oldest insert is evicted as overflow and the resume position moves on."""
        det = Detector(max_pending=2)
        for i in (1, 2, 3):
            det.feed(insert(i), pos(i))
        assert det.expire(T0)[1] == [Skipped(1, 101, SkipReason.OVERFLOW)]
        stats = det.statistics()
        assert (stats.pending, stats.evicted) == (2, 1)
        assert det.min_resume_position() == pos(2)

    def test_rejects_zero_bounds(self) -> None:
        """Zero bounds are refused."""
        with pytest.raises(ValueError):
            Detector(max_pending=0)


class TestDelete:
    """Deleting a pending insert drops it and counts it."""

    def test_delete_pending(self) -> None:
        """A deleted waiting insert is dropped; a later add_lead for it is an orphan."""
        det = Detector()
        det.feed(insert(1), pos(1))
        det.feed(delete(1), pos(2))
        stats = det.statistics()
        assert (stats.pending, stats.deleted) == (0, 1)
        assert det.min_resume_position() is None
        assert det.feed(added(1), pos(3)) == []
        assert det.statistics().orphan_matches == 1

    def test_delete_of_unknown_lead(self) -> None:
        """Deleting a lead the detector never saw changes nothing."""
        det = Detector()
        det.feed(delete(1), pos(1))
        assert det.statistics().deleted == 0


class TestHold:
    """A lead whose URL needs the custom-field step is held until that step is over."""

    def test_vicidial_order_releases_on_notice_with_entry_list_id(self) -> None:
        """A lead of a list with custom fields is held until VICIdial's custom-fields notice, with its
        custom row and entry_list_id."""
        feed = Feeder(holding({101}))
        feed(insert(1, list_id=101))
        assert feed(added(1)) == []
        assert feed(custom_insert(1, zip_plus="60601-1234")) == []
        assert feed(update(1, entry_list_id=101)) == []
        [lead] = feed(custom_notice(1))
        assert lead.custom is not None and lead.custom["zip_plus"] == "60601-1234"
        assert lead.lead["entry_list_id"] == 101
        stats = feed.detector.statistics()
        assert (stats.held, stats.matched, stats.released, stats.custom_timeouts) == (0, 1, 1, 0)

    def test_not_held_when_not_needed(self) -> None:
        """Leads of lists without custom fields are released at once."""
        feed = Feeder(holding({202}))
        feed(insert(1, list_id=101))
        assert [x.lead_id for x in feed(added(1))] == [1]

    def test_needs_custom_gets_list_id(self) -> None:
        """needs_custom is asked with the lead's list id."""
        asked: list[int] = []

        def needs(list_id: int) -> bool:
            asked.append(list_id)
            return False

        det = Detector(needs_custom=needs)
        det.feed(insert(1, list_id=303), pos(1))
        det.feed(added(1, list_id=303), pos(2))
        assert asked == [303]

    def test_timeout_releases_without_custom(self) -> None:
        """A held lead is released without custom data once custom_wait_s of binlog time passes."""
        det = holding({101})
        det.feed(insert(1, ts=T0), pos(1))
        det.feed(added(1, ts=T0 + 1), pos(2))
        assert det.expire(T0 + 11) == ([], [])
        leads, skipped = det.expire(T0 + 12)
        assert [x.lead_id for x in leads] == [1] and skipped == []
        assert leads[0].custom is None
        assert det.statistics().custom_timeouts == 1

    def test_timeout_keeps_custom_row_when_notice_missing(self) -> None:
        """On timeout a held lead keeps the custom row that arrived without its notice."""
        det = holding({101})
        det.feed(insert(1, ts=T0), pos(1))
        det.feed(added(1, ts=T0), pos(2))
        det.feed(custom_insert(1, ts=T0, zip_plus="x"), pos(3))
        [lead] = det.expire(T0 + 11)[0]
        assert lead.custom == {"lead_id": 1, "zip_plus": "x"}

    @pytest.mark.parametrize(
        "outcome",
        [
            "NOT ADDED, NO FIELDS DEFINED",
            "NOT ADDED, NO FIELDS TO UPDATE DEFINED",
            "NOT ADDED, NO CUSTOM FIELDS DEFINED FOR THIS LIST",
        ],
    )
    def test_any_custom_step_notice_releases(self, outcome: str) -> None:
        """Any custom-fields step notice releases the held lead."""
        feed = Feeder(holding({101}))
        feed(insert(1), added(1))
        [lead] = feed(custom_notice(1, outcome=outcome))
        assert lead.custom is None

    def test_disabled_notice_releases(self) -> None:
        """The custom-fields-disabled notice releases the held lead."""
        feed = Feeder(holding({101}))
        feed(insert(1), added(1))
        notice = api_log(
            "3125550100|1|Y|0",
            result="NOTICE",
            reason="add_lead CUSTOM FIELDS NOT ADDED, CUSTOM FIELDS DISABLED",
        )
        assert [x.lead_id for x in feed(notice)] == [1]

    def test_other_notices_do_not_release(self) -> None:
        """Other notices, and another lead's notice, do not release a held lead."""
        feed = Feeder(holding({101}))
        feed(insert(1), added(1))
        assert feed(api_log("2|1", result="NOTICE", reason="add_lead MULTI-ALT-PHONE NUMBERS LOADED")) == []
        assert feed(custom_notice(2)) == []  # another lead's step
        assert feed.detector.statistics().held == 1

    def test_interleaved_holds(self) -> None:
        """Interleaved held leads each get their own custom row."""
        feed = Feeder(holding({101}))
        feed(insert(1), insert(2), added(2), added(1), custom_insert(2, f="two"), custom_insert(1, f="one"))
        [second] = feed(custom_notice(2))
        [first] = feed(custom_notice(1))
        assert (first.lead_id, first.custom and first.custom["f"]) == (1, "one")
        assert (second.lead_id, second.custom and second.custom["f"]) == (2, "two")

    def test_custom_row_before_match_kept(self) -> None:
        """A custom row that arrives before the match is kept for the lead."""
        feed = Feeder(holding({101}))
        feed(insert(1), custom_insert(1, f="early"), added(1))
        [lead] = feed(custom_notice(1))
        assert lead.custom is not None and lead.custom["f"] == "early"

    def test_custom_row_for_unknown_lead_ignored(self) -> None:
        """A custom row for an unknown lead is ignored; one without lead_id is malformed."""
        feed = Feeder(holding({101}))
        assert feed(custom_insert(5, f="x")) == []
        feed(rc("custom_101", Op.INSERT, T0, after={"f": "no lead id"}))
        assert feed.detector.statistics().malformed == 1

    def test_delete_of_held_lead_does_not_drop_it(self) -> None:
        """Deleting a held lead does not drop it: it is released on its notice."""
        feed = Feeder(holding({101}))
        feed(insert(1), added(1), delete(1))
        assert [x.lead_id for x in feed(custom_notice(1))] == [1]

    def test_max_held_releases_oldest_early(self) -> None:
        """Past max_held the oldest held lead is released early and counted."""
        det = Detector(needs_custom=lambda _list_id: True, max_held=1)
        det.feed(insert(1), pos(1))
        det.feed(insert(2), pos(2))
        assert det.feed(added(1), pos(3)) == []
        assert [x.lead_id for x in det.feed(added(2), pos(4))] == [1]
        stats = det.statistics()
        assert (stats.held, stats.held_overflow) == (1, 1)


class TestCheckpoint:
    """min_resume_position() never lets a checkpoint pass a lead still waiting."""

    def test_empty(self) -> None:
        """A detector with nothing waiting pins no resume position."""
        assert Detector().min_resume_position() is None

    def test_oldest_waiting_insert(self) -> None:
        """The resume position is the oldest insert still waiting for its match."""
        det = Detector()
        det.feed(insert(1), pos(100))
        det.feed(insert(2), pos(200))
        assert det.min_resume_position() == pos(100)
        det.feed(added(1), pos(300))
        assert det.min_resume_position() == pos(200)
        det.feed(added(2), pos(400))
        assert det.min_resume_position() is None

    def test_held_lead_pins(self) -> None:
        """A held lead pins the resume position until it is released."""
        det = holding({101})
        det.feed(insert(1), pos(100))
        det.feed(added(1), pos(200))
        det.feed(insert(2, list_id=202), pos(300))
        det.feed(added(2, list_id=202), pos(400))
        assert det.min_resume_position() == pos(100)
        det.feed(custom_notice(1), pos(500))
        assert det.min_resume_position() is None

    def test_expired_entries_unpin(self) -> None:
        """Expired entries stop pinning the resume position."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0), pos(100))
        det.feed(insert(2, ts=T0 + 20), pos(200))
        det.expire(T0 + 31)
        assert det.min_resume_position() == pos(200)

    def test_insert_needs_resume(self) -> None:
        """Feeding an insert without a resume position is an error."""
        with pytest.raises(ValueError, match="resume"):
            Detector().feed(insert(1), None)

    def test_other_changes_need_no_resume(self) -> None:
        """Changes other than inserts need no resume position."""
        assert Detector().feed(added(1)) == []


class TestStatistics:
    """statistics() reports gauges and counters, and skips by reason."""

    def test_counts(self) -> None:
        """statistics() counts inserts, matches, evictions, expiries and orphans, and skips by reason."""
        det = Detector(max_pending=3, match_window_s=30)
        for i in range(1, 5):
            det.feed(insert(i, ts=T0), pos(i))
        det.feed(added(2), pos(10))
        det.feed(added(77), pos(11))
        det.expire(T0 + 31)
        stats = det.statistics()
        assert stats.inserts == 4
        assert stats.matched == 1 and stats.released == 1
        assert stats.evicted == 1 and stats.not_api == 2
        assert stats.orphan_matches == 1
        assert (stats.pending, stats.held) == (0, 0)
        assert stats.skipped_by_reason() == {
            SkipReason.NOT_API: 2,
            SkipReason.UPDATE_LEAD_INSERT: 0,
            SkipReason.OVERFLOW: 1,
        }


class TestLateMatches:
    """An add_lead row whose insert was given up on asks the caller to fetch the lead."""

    def test_expired_insert_becomes_a_late_match(self) -> None:
        """Expired as not_api, then its add_lead SUCCESS: one LateMatch with the api_log time."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0, list_id=105), pos(1))
        assert det.expire(T0 + 31) == ([], [Skipped(1, 105, SkipReason.NOT_API)])
        assert det.feed(added(1, list_id=105, ts=T0 + 45), pos(2)) == []
        assert det.take_late() == [LateMatch(1, 105, T0 + 45)]
        assert det.take_late() == []

    def test_insert_before_start_becomes_a_late_match(self) -> None:
        """No insert seen at all (before our start position): fetched too."""
        det = Detector()
        det.feed(added(7, ts=T0), pos(1))
        assert det.take_late() == [LateMatch(7, 101, T0)]

    def test_pending_and_held_leads_are_not_late(self) -> None:
        """A normal match, and a second SUCCESS row of a held lead, fetch nothing."""
        det = Detector(needs_custom=lambda list_id: list_id == 202)
        det.feed(insert(1), pos(1))
        det.feed(insert(2, list_id=202), pos(2))
        det.feed(added(1), pos(3))
        det.feed(added(2, list_id=202), pos(4))
        det.feed(added(2, list_id=202), pos(5))
        assert det.take_late() == []

    def test_late_match_does_not_hold_the_checkpoint(self) -> None:
        """The caller commits the fetched lead with the step: the detector holds nothing."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0), pos(1))
        det.expire(T0 + 31)
        det.feed(added(1, ts=T0 + 40), pos(2))
        assert det.min_resume_position() is None


class TestPendingBytes:
    """Unmatched inserts are bounded in estimated bytes as well as in count."""

    def test_oldest_evicted_past_the_byte_bound(self) -> None:
        """Inserts with big rows evict the oldest once their estimated size passes the bound."""
        one = row_size_bytes(lead_row(1, comments="x" * 10_000))
        det = Detector(max_pending_bytes=3 * one + 10)
        for i in range(1, 6):
            det.feed(insert(i, comments="x" * 10_000), pos(i))
        _, skipped = det.expire(T0)
        assert skipped == [Skipped(1, 101, SkipReason.OVERFLOW), Skipped(2, 101, SkipReason.OVERFLOW)]
        stats = det.statistics()
        assert stats.pending == 3 and 0 < stats.pending_bytes <= 3 * one + 10

    def test_bytes_released_on_match_and_expiry(self) -> None:
        """Matched and expired inserts give their bytes back."""
        det = Detector(match_window_s=30)
        det.feed(insert(1, ts=T0), pos(1))
        det.feed(insert(2, ts=T0), pos(2))
        det.feed(added(1, ts=T0), pos(3))
        det.expire(T0 + 31)
        assert det.statistics().pending_bytes == 0

    def test_row_size_grows_with_values(self) -> None:
        """A row's size estimate grows with its values."""
        assert row_size_bytes(lead_row(1, comments="x" * 1000)) > row_size_bytes(lead_row(1)) + 900
