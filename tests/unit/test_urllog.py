"""Following VICIdial's own sender through vicidial_url_log rows."""

from __future__ import annotations

from cdc.records import Op, Position, RowChange, Value
from cdc.urllog import UrlLogTracker

P1 = Position("binlog.000001", 100)
P2 = Position("binlog.000001", 200)


def row(
    op: Op,
    url_log_id: int,
    lead_id: int,
    response: str = "",
    url_type: str = "apinewlead",
    ts: int = 1000,
    response_sec: int = 0,
) -> RowChange:
    after: dict[str, Value] = {
        "url_log_id": url_log_id,
        "uniqueid": str(lead_id),
        "url_type": url_type,
        "url": f"http://crm.example/new?id={lead_id}",
        "url_response": response,
        "response_sec": response_sec,
    }
    before = dict(after, url_response="") if op is Op.UPDATE else None
    return RowChange("asterisk", "vicidial_url_log", op, before, after, ts)


class TestUrlLogTracker:
    """INSERT then UPDATE make one attempt; PHP ERROR is a failure; a missing UPDATE times out."""

    def test_success(self) -> None:
        """A response that is not a PHP ERROR is a success with its response time."""
        t = UrlLogTracker(timeout_s=60)
        assert t.feed(row(Op.INSERT, 1, 77), P1) == []
        assert t.min_resume_position() == P1
        [a] = t.feed(row(Op.UPDATE, 1, 77, "OK", response_sec=2), P2)
        assert (a.lead_id, a.ok, a.status, a.response_s, a.timed_out) == (77, True, 200, 2.0, False)
        assert t.min_resume_position() is None

    def test_php_errors(self) -> None:
        """Connection refused (no status) and HTTP 500 (status parsed) are failures."""
        t = UrlLogTracker()
        t.feed(row(Op.INSERT, 1, 77), P1)
        t.feed(row(Op.INSERT, 2, 78), P1)
        [refused] = t.feed(row(Op.UPDATE, 1, 77, "PHP ERROR: file_get_contents(): Connection refused"), P2)
        [http500] = t.feed(
            row(
                Op.UPDATE,
                2,
                78,
                "PHP ERROR: failed to open stream: HTTP request failed! HTTP/1.1 500 Internal",
            ),
            P2,
        )
        assert (refused.ok, refused.status) == (False, 0)
        assert (http500.ok, http500.status) == (False, 500)
        assert refused.url == "http://crm.example/new?id=77"

    def test_missing_update_times_out(self) -> None:
        """No UPDATE within the timeout (binlog time): a failed attempt."""
        t = UrlLogTracker(timeout_s=60)
        t.feed(row(Op.INSERT, 1, 77, ts=1000), P1)
        assert t.expire(1060) == []
        [a] = t.expire(1061)
        assert (a.lead_id, a.ok, a.timed_out) == (77, False, True)
        assert t.statistics().timed_out == 1

    def test_other_url_types_and_update_without_insert(self) -> None:
        """Other url_types are ignored; an UPDATE whose INSERT came before our start still counts."""
        t = UrlLogTracker()
        assert t.feed(row(Op.INSERT, 1, 77, url_type="dispo"), P1) == []
        [a] = t.feed(row(Op.UPDATE, 9, 79, "PHP ERROR: timeout"), P2)
        assert (a.lead_id, a.ok) == (79, False)
