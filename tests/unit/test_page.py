"""The status page's pure parts: activity recorder, admin guard, view rows, HTML rendering,
and its two config keys (``http.show_lead_data``, the admin token from a file or env only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cdc import config
from cdc.breaker import BreakerState
from cdc.delivery import EndpointStatistics
from cdc.errors import ConfigError
from cdc.metrics import Metrics
from cdc.page import render, view
from cdc.page.activity import DAY_MINUTES, ActivityRecorder, Totals, read_totals
from cdc.page.guard import SESSION_TTL_S, AdminGuard
from cdc.records import Attempt, Delivery, Outcome, UrlSource
from cdc.store import DeadGroup, DeadSummary, DeliveryRecord, DeliveryState, StoredDelivery

T0 = 1_800_000_000.0  # a minute boundary: 30_000_000 minutes
URL = "http://crm.example/new?fn=Zebulon&ph=3125550171"


def _delivery(
    lead_id: int = 7, endpoint_id: str = "crm:80", source: UrlSource = UrlSource.CONFIG_SYSTEM
) -> Delivery:
    return Delivery(
        source="s",
        lead_id=lead_id,
        list_id=101,
        endpoint_id=endpoint_id,
        method="GET",
        url=URL,
        url_source=source,
        inserted_at=T0,
    )


def _item(lead_id: int = 7, **kwargs: object) -> StoredDelivery:
    return StoredDelivery(id=lead_id * 10, delivery=_delivery(lead_id, **kwargs), attempts=0, created_at=T0)  # type: ignore[arg-type]


def _attempt(outcome: Outcome, status: int = 200, error: str = "", duration_s: float = 0.1) -> Attempt:
    return Attempt(delivery_id=1, outcome=outcome, status=status, error=error, duration_s=duration_s)


class TestActivityRecorder:
    """Per-minute differences of the metric totals, bounded to a day; attempts in a ring."""

    def test_minutes_from_total_differences(self) -> None:
        """Each observation adds what changed to its minute; the report completes the current one."""
        r = ActivityRecorder()
        r.observe(T0 + 1, Totals(detected=3, sent=2, skipped={"list_disabled": 1}))
        r.observe(T0 + 61, Totals(detected=5, sent=4, dead=1, skipped={"list_disabled": 1}))
        report = r.report(T0 + 70, Totals(detected=6, sent=4, dead=1, skipped={"list_disabled": 2}))
        assert report.totals.detected == 6
        assert report.hour.per_minute["detected"][-2:] == (3, 3)
        assert report.hour.per_minute["sent"][-2:] == (2, 2)
        assert report.hour.per_minute["skipped"][-2:] == (1, 1)
        assert (report.hour.detected, report.hour.sent, report.hour.dead, report.hour.skipped) == (6, 4, 1, 2)
        assert report.hour.skipped_by_reason == {"list_disabled": 2}
        assert len(report.hour.per_minute["sent"]) == 60
        assert len(report.day.per_minute["sent"]) == DAY_MINUTES

    def test_report_does_not_record(self) -> None:
        """A report (a GET) changes nothing: the next report from the same totals is the same."""
        r = ActivityRecorder()
        r.observe(T0, Totals(detected=1))
        first = r.report(T0 + 5, Totals(detected=4))
        assert r.report(T0 + 5, Totals(detected=4)) == first
        assert first.hour.detected == 4

    def test_old_minutes_leave_the_hour_then_the_day(self) -> None:
        """Two hours later the hour is empty and the day still counts them; memory is bounded."""
        r = ActivityRecorder()
        r.observe(T0, Totals(sent=5, sent_by_endpoint={"crm:80": 5}))
        later = r.report(T0 + 7200, Totals(sent=5, sent_by_endpoint={"crm:80": 5}))
        assert later.hour.sent == 0 and later.day.sent == 5
        for minute in range(DAY_MINUTES + 10):
            r.observe(T0 + 60 * minute, Totals(sent=5 + minute))
        # One sent per minute, for more minutes than a day holds: the day counts one per minute.
        assert r.report(T0 + 60 * (DAY_MINUTES + 9), Totals(sent=DAY_MINUTES + 14)).day.sent == DAY_MINUTES

    def test_attempts_recent_latency_errors_resent(self) -> None:
        """Newest attempt first; p50/p95 by nearest rank; the last error class; VICIdial's re-sent."""
        r = ActivityRecorder()
        for i in range(1, 21):
            r.attempt(T0 + i, _item(i), _attempt(Outcome.DELIVERED, duration_s=i / 100))
        r.attempt(T0 + 30, _item(99), _attempt(Outcome.RETRY, 500, "http_500"))
        r.attempt(T0 + 31, _item(98, source=UrlSource.VICIDIAL_RETRY), _attempt(Outcome.DELIVERED))
        r.observe(T0 + 40, Totals(sent=21, sent_by_endpoint={"crm:80": 21}))
        report = r.report(T0 + 50, Totals(sent=21, sent_by_endpoint={"crm:80": 21}))
        assert [a.lead_id for a in report.recent[:2]] == [98, 99]
        ep = report.endpoints["crm:80"]
        assert ep.last_error == "http_500"
        assert ep.p50_s == pytest.approx(0.1) and ep.p95_s == pytest.approx(0.19)  # 21st of 22
        assert ep.sent_per_min == pytest.approx(21)  # one minute recorded so far
        r.observe(T0 + 60 * 9, Totals(sent=31, sent_by_endpoint={"crm:80": 31}))
        assert r.report(T0 + 60 * 9, Totals(sent=31, sent_by_endpoint={"crm:80": 31})).endpoints[
            "crm:80"
        ].sent_per_min == pytest.approx(10 / 5)  # the last five minutes, of ten recorded
        assert report.resent == 1
        assert all(a.url is None for a in report.recent)  # lead data not kept by default

    def test_urls_kept_only_when_asked(self) -> None:
        """With keep_urls (http.show_lead_data) each attempt keeps its URL."""
        r = ActivityRecorder(keep_urls=True)
        r.attempt(T0, _item(), _attempt(Outcome.DELIVERED))
        assert r.report(T0, Totals()).recent[0].url == URL


class TestReadTotals:
    """The page's totals are the metrics' own counters."""

    def test_counts_by_sender_and_outcome(self) -> None:
        """Delivered and dead of our sender, VICIdial's attempts and failures, skips by reason."""
        m = Metrics()
        for _ in range(3):
            m.leads_detected.inc()
        m.leads_skipped.labels("list_disabled").inc(2)
        m.deliveries.labels("a:80", "delivered", "cdc").inc(4)
        m.deliveries.labels("b:80", "delivered", "cdc").inc(1)
        m.deliveries.labels("a:80", "dead", "cdc").inc(2)
        m.deliveries.labels("a:80", "retry", "cdc").inc(9)
        m.deliveries.labels("v:80", "delivered", "vicidial").inc(5)
        m.deliveries.labels("v:80", "failed", "vicidial").inc(2)
        t = read_totals(m)
        assert (t.detected, t.sent, t.dead, t.skipped_total) == (3, 5, 2, 2)
        assert t.sent_by_endpoint == {"a:80": 4, "b:80": 1}
        assert (t.vicidial_attempts, t.vicidial_failures) == (7, 2)


class TestAdminGuard:
    """No token: nobody acts. With one: a session from sign-in, and its CSRF token on every action."""

    def test_no_token_refuses_everything(self) -> None:
        """No admin token configured: no sign-in, no action, whatever is offered."""
        g = AdminGuard("")
        assert not g.enabled
        assert g.sign_in("", T0) is None
        assert not g.may_act("anything", "anything", T0)

    def test_session_and_csrf(self) -> None:
        """Only a live session with its own CSRF token may act; signing out or expiry ends it."""
        g = AdminGuard("s3cret", key=b"k" * 32)
        assert g.sign_in("wrong", T0) is None
        session = g.sign_in("s3cret", T0)
        assert session is not None and g.is_signed_in(session, T0)
        csrf = g.csrf_token(session)
        assert g.may_act(session, csrf, T0)
        assert not g.may_act(session, None, T0)
        assert not g.may_act(session, "0" * len(csrf), T0)
        assert not g.may_act(None, csrf, T0)
        assert not g.may_act("forged-session", g.csrf_token("forged-session"), T0)
        assert not g.may_act(session, csrf, T0 + SESSION_TTL_S + 1)  # expired
        g.sign_out(session)
        assert not g.may_act(session, csrf, T0)

    def test_csrf_differs_by_process_key(self) -> None:
        """The CSRF token is an HMAC under this process's key: another process's does not pass."""
        a, b = AdminGuard("t", key=b"a" * 32), AdminGuard("t", key=b"b" * 32)
        assert a.csrf_token("s") != b.csrf_token("s")


class TestView:
    """Endpoint rows and dead letters as the page shows them."""

    def _stats(self, **kwargs: object) -> EndpointStatistics:
        base: dict[str, object] = {
            "endpoint_id": "crm:80",
            "in_flight": 1,
            "waiting": 0,
            "tokens": 5.0,
            "circuit": BreakerState.CLOSED,
            "paused_until": 0.0,
            "opened_at": None,
        }
        return EndpointStatistics(**{**base, **kwargs})  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("kwargs", "state", "until"),
        [
            ({}, "ok", None),
            ({"circuit": BreakerState.OPEN, "blocked_until": T0 + 30}, "breaker open", T0 + 30),
            ({"paused_until": T0 + 9}, "paused by Retry-After", T0 + 9),
            ({"circuit": BreakerState.HALF_OPEN}, "breaker half-open", None),
            ({"waiting": 3, "tokens": 0.2}, "rate-limited", None),
        ],
    )
    def test_endpoint_state(self, kwargs: dict[str, object], state: str, until: float | None) -> None:
        """Breaker open, Retry-After pause, half-open and rate limit each name the endpoint's state."""
        assert view.endpoint_state(self._stats(**kwargs), T0) == (state, until)

    def test_rows_join_sender_outbox_and_activity(self) -> None:
        """An endpoint known only to the outbox still gets a row; numbers come from each source."""
        counts = {"crm:80": {"pending": 4, "dead": 2, "oldest_pending_age_s": 12.0}, "idle:80": {"dead": 1}}
        rows = view.endpoint_rows(T0, [self._stats()], counts, {})
        assert [(r.endpoint_id, r.in_flight, r.backlog, r.dead) for r in rows] == [
            ("crm:80", 1, 4, 2),
            ("idle:80", 0, 0, 1),
        ]

    def test_dead_letters_hide_the_url_unless_asked(self) -> None:
        """A dead letter's URL (lead data) is in the view only with show_lead_data."""
        record = DeliveryRecord(
            id=5,
            delivery=_delivery(),
            state=DeliveryState.DEAD,
            attempts=3,
            next_attempt_at=T0,
            last_status=500,
            last_error="",
            created_at=T0 - 100,
            updated_at=T0 - 40,
            delivered_at=None,
        )
        summary = DeadSummary(groups=(DeadGroup("crm:80", "http_500", 1),), recent=(record,))
        hidden = view.dead_letters(summary, {"crm:80": 1, "idle:80": 0}, T0, show_lead_data=False)
        assert hidden["total"] == 1 and hidden["by_endpoint"] == {"crm:80": 1}
        assert hidden["recent"][0] == {
            "id": 5,
            "lead_id": 7,
            "list_id": 101,
            "endpoint_id": "crm:80",
            "reason": "http_500",
            "attempts": 3,
            "age_s": 40.0,
        }
        assert view.dead_letters(summary, {"crm:80": 1}, T0, show_lead_data=True)["recent"][0]["url"] == URL


def _status(*, url: str | None = None) -> dict[str, object]:
    recent: dict[str, object] = {
        "id": 5,
        "lead_id": 7,
        "list_id": 101,
        "endpoint_id": "crm:80",
        "reason": "http_500",
        "attempts": 3,
        "age_s": 40.0,
    }
    if url is not None:
        recent["url"] = url
    return {
        "source": "<b>site</b>",
        "reader_connected": True,
        "mode": "send",
        "dead_letters": {
            "total": 1,
            "by_endpoint": {"crm:80": 1},
            "groups": [{"endpoint_id": "crm:80", "reason": "http_500", "count": 1}],
            "recent": [recent],
        },
    }


class TestRender:
    """Escaped HTML, no inline script or style, actions only for a signed-in admin."""

    def test_escaped_and_no_inline_script_or_style(self) -> None:
        """Values are escaped; the only script is the self-served file; no inline style or handler."""
        html = render.page(_status(url=URL + "&x=<script>"), render.Viewer(), T0)
        assert "<b>site</b>" not in html and "&lt;b&gt;site&lt;/b&gt;" in html
        assert "&x=<script>" not in html
        assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/page.js" defer>']
        assert " style=" not in html and "<style" not in html and " on" + "click=" not in html

    def test_no_buttons_without_a_signed_in_admin(self) -> None:
        """Read-only viewers and admins not signed in get no button and no action form."""
        for viewer in (render.Viewer(), render.Viewer(admin_enabled=True)):
            html = render.page(_status(), viewer, T0)
            assert "<button" not in html.split('<main id="main"', 1)[1]
            assert "/dead-letters" not in html

    def test_signed_in_admin_gets_buttons_with_csrf(self) -> None:
        """A signed-in admin gets Retry/Purge per row, per endpoint and for a selection, with CSRF."""
        html = render.page(_status(), render.Viewer(admin_enabled=True, signed_in=True, csrf="c0ffee"), T0)
        assert 'name="retry_one" value="5"' in html and 'name="purge_one" value="5"' in html
        assert 'class="retry-all"' in html and 'id="retry-selected"' in html
        forms = html.count('action="/dead-letters"')
        assert forms == 2 and html.count('name="csrf" value="c0ffee"') == forms + 1  # + sign out

    def test_url_column_only_with_lead_data(self) -> None:
        """The URL column (with the lead's name) appears only when the data has URLs."""
        assert "Zebulon" not in render.page(_status(), render.Viewer(), T0)
        assert "Zebulon" in render.page(_status(url=URL), render.Viewer(), T0)

    def test_flash_from_codes_only(self) -> None:
        """?done= picks a fixed message; anything else shows nothing (no text from the URL)."""
        assert "2 dead letter(s) queued again" in render.page({}, render.Viewer(), T0, "retried", 2)
        assert 'id="flash"' not in render.page({}, render.Viewer(), T0, "<i>call 555</i>", 0)


class TestPageConfig:
    """http.show_lead_data in the TOML; the admin token from a file or env, never the TOML."""

    def _write(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "c.toml"
        path.write_text(text, encoding="utf-8")
        return path

    def test_defaults_hide_lead_data_and_allow_no_actions(self) -> None:
        """By default: no lead data on the page, no admin token."""
        cfg = config.load(None, env={})
        assert cfg.http.show_lead_data is False and cfg.http.admin_token.value == ""

    def test_token_not_in_toml(self, tmp_path: Path) -> None:
        """An admin_token key in the file is refused, naming the two ways that work."""
        with pytest.raises(ConfigError, match="admin_token_file"):
            config.load(self._write(tmp_path, '[http]\nadmin_token = "x"\n'), env={})

    def test_token_file_and_env(self, tmp_path: Path) -> None:
        """admin_token_file is read (newline dropped), the env variable wins, repr hides it."""
        token = tmp_path / "token"
        token.write_text("from-file\n", encoding="utf-8")
        path = self._write(tmp_path, f'[http]\nshow_lead_data = true\nadmin_token_file = "{token}"\n')
        cfg = config.load(path, env={})
        assert cfg.http.admin_token.value == "from-file" and cfg.http.show_lead_data is True
        cfg = config.load(path, env={"VICIDIAL_CDC_HTTP_ADMIN_TOKEN": "from-env"})
        assert cfg.http.admin_token.value == "from-env"
        assert "from-env" not in repr(cfg)

    def test_missing_token_file(self, tmp_path: Path) -> None:
        """An unreadable admin token file is a clear error."""
        path = self._write(tmp_path, f'[http]\nadmin_token_file = "{tmp_path / "nope"}"\n')
        with pytest.raises(ConfigError, match="admin_token_file"):
            config.load(path, env={})
