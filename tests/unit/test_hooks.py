"""VICIdial's URL hooks: the url_type vocabulary, response forms, INSERT→UPDATE tracking, rescue."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdc.config import load
from cdc.errors import ConfigError
from cdc.hooks.config import HooksConfig, load_hooks
from cdc.hooks.configured import CAMPAIGNS, INGROUPS, LISTS, AltRow, configured_hooks, setting_columns
from cdc.hooks.response import Form, classify
from cdc.hooks.tracker import Event, HookTracker
from cdc.hooks.types import HOOK_TYPES, OTHER, Kind, label_of
from cdc.hooks.watch import HookPolicy, HookWatch, resend_of
from cdc.metrics import Metrics
from cdc.ops.check import Status
from cdc.ops.check.hooks import HookFacts, check_hooks
from cdc.records import Op, Position, RowChange, UrlSource, Value
from cdc.resolve import EndpointIds

P1 = Position("binlog.000001", 100)
P2 = Position("binlog.000001", 200)

PHP_REFUSED = (
    "PHP ERROR: Type=2 - Message=file(http://crm.example/x): Failed to open stream: Connection refused"
    " - Line=16520 - File=/srv/www/htdocs/agc/vdc_db_query.php"
)
PHP_500 = (
    "PHP ERROR: Type=2 - Message=file(http://crm.example/x): Failed to open stream: HTTP request failed!"
    " HTTP/1.1 500 Internal Server Error - Line=17130 - File=/srv/www/htdocs/agc/vdc_db_query.php"
)
WGET_OK = "OK!|--2026-12-06 04:00:00--http://crm.example/na?x=1!Connecting to crm.example:80... connected.!HTTP request sent, awaiting response... 200 OK!Length: 3!"  # noqa: E501
WGET_REFUSED = "<RESPONSE EMPTY>|--2026-12-06 04:00:00--http://crm.example/na?x=1!Connecting to crm.example:80... failed: Connection refused.!"  # noqa: E501
WGET_503 = "<RESPONSE EMPTY>|--2026-12-06 04:00:00--http://crm.example/na!HTTP request sent, awaiting response... 503 Service Unavailable!2026-12-06 04:00:00 ERROR 503: Service Unavailable.!"  # noqa: E501


def row(
    op: Op,
    url_log_id: int,
    lead_id: int | str,
    response: str = "",
    url_type: str = "apinewlead",
    ts: int = 1000,
    response_sec: int = 0,
    url: str = "",
) -> RowChange:
    after: dict[str, Value] = {
        "url_log_id": url_log_id,
        "uniqueid": str(lead_id),
        "url_type": url_type,
        "url": url or f"http://crm.example/new?id={lead_id}",
        "url_response": response,
        "response_sec": response_sec,
    }
    before = dict(after, url_response="", response_sec=0) if op is Op.UPDATE else None
    return RowChange("asterisk", "vicidial_url_log", op, before, after, ts)


def tracker(timeout_s: float = 60.0, pinned: bool = True) -> HookTracker:
    return HookTracker(lambda _t: timeout_s, lambda _t: pinned)


class TestTypes:
    """Every url_type found in VICIdial's source, with the stored (10-character) spelling."""

    def test_known_types_fit_the_column(self) -> None:
        """url_type is VARCHAR(10): every key is what the column can hold."""
        assert all(len(t) <= 10 for t in HOOK_TYPES)
        assert {"dispo", "start", "na_callurl", "add_lead", "apinewlead", "TILTX_SHAK"} <= set(HOOK_TYPES)

    def test_labels_are_bounded(self) -> None:
        """An unknown url_type is labelled other."""
        assert label_of("dispo") == "dispo"
        assert label_of("made_up_42") == OTHER

    def test_only_notifications_are_rescuable(self) -> None:
        """Lookups and log rows are never re-sent."""
        assert HOOK_TYPES["dispo"].rescuable and HOOK_TYPES["na_callurl"].rescuable
        assert HOOK_TYPES["DID_FILTER"].kind is Kind.LOOKUP and not HOOK_TYPES["DID_FILTER"].rescuable
        assert not HOOK_TYPES["webform"].rescuable and not HOOK_TYPES["2FA_SMS"].rescuable


class TestResponse:
    """Each sender's url_response form gives the right verdict."""

    @pytest.mark.parametrize(
        ("response", "ok", "status", "form"),
        [
            ("OK", True, 200, Form.PHP),
            (PHP_REFUSED, False, 0, Form.PHP),
            (PHP_500, False, 500, Form.PHP),
            ("PHP ERROR: file_get_contents(): Connection refused", False, 0, Form.PHP),
            ("PHP ERROR: Type= - Message= - Line= - File=", True, 0, Form.PHP),  # file() of an empty body
            ("Sun, 06 Dec 2026 04:00:00 +0000|<html>ok</html>", True, 200, Form.RUNURLS),
            (f"Sun, 06 Dec 2026 04:00:00 +0000|{PHP_500}", False, 500, Form.RUNURLS),
            (WGET_OK, True, 200, Form.WGET),
            (WGET_REFUSED, False, 0, Form.WGET),
            (WGET_503, False, 503, Form.WGET),
            ("", True, 0, Form.EMPTY),
        ],
    )
    def test_forms(self, response: str, ok: bool, status: int, form: Form) -> None:
        """PHP body/error, RUNurls date prefix, the Perl sender's wget log, empty."""
        verdict = classify(response)
        assert (verdict.ok, verdict.status, verdict.form) == (ok, status, form)

    def test_wget_post(self) -> None:
        """AST_send_URL.pl appends |HTTP-POST|<headers> when it POSTed."""
        plain = classify(f"{WGET_503}|HTTP-POST|")
        assert (plain.post, plain.post_headers, plain.status) == (True, False, 503)
        assert classify(f"{WGET_503}|HTTP-POST| --header=X-Key: v").post_headers


class TestHookTracker:
    """INSERT then UPDATE make one attempt; PHP ERROR is a failure; a missing UPDATE times out."""

    def test_success(self) -> None:
        """A response that is not a PHP ERROR is a success with its response time."""
        t = tracker()
        [started] = t.feed(row(Op.INSERT, 1, 77), P1)
        assert started.event is Event.STARTED
        assert t.min_resume_position() == P1
        [a] = t.feed(row(Op.UPDATE, 1, 77, "OK", response_sec=2), P2)
        assert a.verdict is not None
        assert (a.uniqueid, a.ok, a.verdict.status, a.response_s, a.event) == (
            "77",
            True,
            200,
            2.0,
            Event.COMPLETED,
        )
        assert t.min_resume_position() is None

    def test_php_errors(self) -> None:
        """Connection refused (no status) and HTTP 500 (status parsed) are failures."""
        t = tracker()
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
        assert refused.verdict is not None and http500.verdict is not None
        assert (refused.ok, refused.verdict.status) == (False, 0)
        assert (http500.ok, http500.verdict.status) == (False, 500)
        assert refused.url == "http://crm.example/new?id=77"

    def test_missing_update_times_out(self) -> None:
        """No UPDATE within the timeout (binlog time): never completed."""
        t = tracker(60)
        t.feed(row(Op.INSERT, 1, 77, ts=1000), P1)
        assert t.expire(1060) == []
        [a] = t.expire(1061)
        assert (a.uniqueid, a.ok, a.event) == ("77", False, Event.NEVER_COMPLETED)
        assert t.statistics().never_completed == 1

    def test_every_type_and_update_without_insert(self) -> None:
        """Every url_type is followed; an UPDATE whose INSERT came before our start still counts."""
        t = tracker()
        [started] = t.feed(row(Op.INSERT, 1, "1733450000.42", url_type="dispo"), P1)
        assert (started.label, started.uniqueid) == ("dispo", "1733450000.42")
        [a] = t.feed(row(Op.UPDATE, 9, 79, "PHP ERROR: timeout"), P2)
        assert (a.uniqueid, a.ok, a.event) == ("79", False, Event.COMPLETED)

    def test_per_type_timeouts_and_pins(self) -> None:
        """Each type expires on its own timeout; only pinned types hold the checkpoint."""
        t = HookTracker(lambda u: 300.0 if u == "dispo" else 60.0, lambda u: u == "dispo")
        t.feed(row(Op.INSERT, 1, "u1", url_type="start", ts=1000), P1)
        t.feed(row(Op.INSERT, 2, "u2", url_type="dispo", ts=1000), P2)
        assert t.min_resume_position() == P2
        assert [a.url_type for a in t.expire(1100)] == ["start"]
        assert t.statistics().pending == {"dispo": 1}
        assert [a.url_type for a in t.expire(1301)] == ["dispo"]

    def test_late_update(self) -> None:
        """An UPDATE after never-completed, or after the row's first UPDATE, is late."""
        t = tracker(60)
        t.feed(row(Op.INSERT, 1, "u", url_type="dispo", ts=1000), P1)
        t.expire(1100)
        [late] = t.feed(row(Op.UPDATE, 1, "u", "Sun, 06 Dec 2026 04:00:00 +0000|ok", url_type="dispo"), P2)
        assert (late.event, late.ok) == (Event.LATE, True)
        t.feed(row(Op.INSERT, 2, "u", url_type="dispo", ts=1000), P1)
        t.feed(row(Op.UPDATE, 2, "u", PHP_500, url_type="dispo"), P2)
        [again] = t.feed(row(Op.UPDATE, 2, "u", "ok", url_type="dispo"), P2)
        assert again.event is Event.LATE
        t.feed(row(Op.INSERT, 3, "u", url_type="dispo", ts=1000), P1)
        t.feed(row(Op.UPDATE, 3, "u", "ok", url_type="dispo"), P2)
        [twice] = t.feed(row(Op.UPDATE, 3, "u", "ok again", url_type="dispo"), P2)
        assert twice.event is Event.LATE  # RUNurls run twice: counted once as completed
        assert t.statistics().completed == 2

    def test_log_rows_wait_for_nothing(self) -> None:
        """webform and non-agent rows get no UPDATE: counted, never pending."""
        t = HookTracker(lambda u: 0.0 if u == "webform" else 60.0, lambda _u: True)
        assert [a.event for a in t.feed(row(Op.INSERT, 1, "u", "MAIN 77", url_type="webform"), P1)] == [
            Event.STARTED
        ]
        assert t.min_resume_position() is None and t.expire(10_000) == []

    def test_overflow_evicts_oldest(self) -> None:
        """Past max_pending the oldest pending INSERT is reported never completed."""
        t = HookTracker(lambda _u: 60.0, lambda _u: True, max_pending=1)
        t.feed(row(Op.INSERT, 1, "u1", url_type="dispo"), P1)
        out = t.feed(row(Op.INSERT, 2, "u2", url_type="dispo"), P2)
        assert [(a.event, a.url_log_id) for a in out] == [(Event.STARTED, 2), (Event.NEVER_COMPLETED, 1)]


class TestConfig:
    """[hooks] names url_types as the log stores them; only notifications may be rescued."""

    def test_load(self) -> None:
        """rescue and timeouts_s are read; the env replaces rescue."""
        cfg = load_hooks({"rescue": ["dispo"], "timeouts_s": {"dispo": 600}}, {})
        assert cfg == HooksConfig(frozenset({"dispo"}), {"dispo": 600.0})
        assert load_hooks({}, {"VICIDIAL_CDC_HOOKS_RESCUE": "start, na_callurl"}).rescue == {
            "start",
            "na_callurl",
        }

    @pytest.mark.parametrize(
        ("table", "needle"),
        [
            ({"rescue": ["DID_FILTER"]}, "lookup"),
            ({"rescue": ["webform"]}, "log"),
            ({"rescue": ["apinewlead"]}, "delivery.mode"),
            ({"rescue": ["noagent"]}, "'na_callurl'"),
            ({"rescue": ["nope"]}, "unknown url_type"),
            ({"rescue": "dispo"}, "list"),
            ({"timeouts_s": {"dispo": 0}}, "> 0"),
            ({"timeouts_s": {"webform": 5}}, "no UPDATE"),
            ({"extra": 1}, "unknown key"),
        ],
    )
    def test_errors(self, table: dict[str, object], needle: str) -> None:
        """Each mistake names the key and the fix."""
        with pytest.raises(ConfigError, match=needle):
            load_hooks(table, {})

    def test_in_the_config_file(self, tmp_path: Path) -> None:
        """[hooks] is a section of the one config file."""
        path = tmp_path / "c.toml"
        path.write_text('[hooks]\nrescue = ["dispo"]\n')
        assert load(path, {}).hooks.rescue == {"dispo"}


def watch(
    rescue: frozenset[str] = frozenset({"dispo"}), apinewlead: bool = True
) -> tuple[HookWatch, Metrics]:
    metrics = Metrics()
    policy = HookPolicy(HooksConfig(rescue), apinewlead, 60.0)
    return HookWatch(policy, metrics, EndpointIds(), "db1"), metrics


class TestWatch:
    """Metrics for every type; rescue only for rescued types, never what VICIdial completed."""

    def test_failed_dispo_is_rescued_once_with_its_url(self) -> None:
        """The logged URL, byte for byte, keyed by url_log_id; a completed one is never re-sent."""
        w, m = watch()
        url = "http://crm.example:8080/dispo?st=SALE&x=%C3%A9+y"
        w.feed(row(Op.INSERT, 5, "1733450000.42", url_type="dispo", url=url), P1)
        step = w.feed(row(Op.UPDATE, 5, "1733450000.42", PHP_500, url_type="dispo", url=url), P2)
        [d] = step.deliveries
        assert (d.source, d.lead_id, d.endpoint_id, d.method, d.url) == (
            "db1/url_log",
            5,
            "crm.example:8080",
            "GET",
            url,
        )
        assert d.url_source is UrlSource.VICIDIAL_HOOK
        w.feed(row(Op.INSERT, 6, "u", url_type="dispo", url=url), P1)
        assert w.feed(row(Op.UPDATE, 6, "u", "OK", url_type="dispo", url=url), P2).deliveries == []
        labels = {"url_type": "dispo", "endpoint": "crm.example:8080"}
        assert m.registry.get_sample_value("vicidial_cdc_hook_attempts_total", labels) == 2
        assert (
            m.registry.get_sample_value("vicidial_cdc_hook_outcomes_total", {**labels, "outcome": "error"})
            == 1
        )
        assert (
            m.registry.get_sample_value("vicidial_cdc_hook_rescues_total", {**labels, "cause": "error"}) == 1
        )

    def test_rescue_off_only_watches(self) -> None:
        """A type not in [hooks] rescue: counted, never re-sent."""
        w, m = watch(rescue=frozenset())
        w.feed(row(Op.INSERT, 5, "u", url_type="start", ts=1000), P1)
        assert w.expire(2000).deliveries == []
        assert (
            m.registry.get_sample_value(
                "vicidial_cdc_hook_outcomes_total",
                {"url_type": "start", "endpoint": "crm.example:80", "outcome": "never_completed"},
            )
            == 1
        )

    def test_update_after_rescue_is_a_duplicate(self) -> None:
        """Never completed → re-sent; its UPDATE later → one duplicate VICIdial made."""
        w, m = watch()
        w.feed(row(Op.INSERT, 5, "u", url_type="dispo", ts=1000), P1)
        assert len(w.expire(1000 + 301).deliveries) == 1
        w.feed(row(Op.UPDATE, 5, "u", "OK", url_type="dispo"), P2)
        labels = {"url_type": "dispo", "endpoint": "crm.example:80"}
        assert m.registry.get_sample_value("vicidial_cdc_hook_duplicates_total", labels) == 1

    def test_apinewlead_keeps_its_lead_key(self) -> None:
        """API New Lead URL rescues keep (source, lead_id, host:port) and the vicidial_retry source."""
        w, _ = watch()
        w.feed(row(Op.INSERT, 1, 77), P1)
        [d] = w.feed(row(Op.UPDATE, 1, 77, PHP_500), P2).deliveries
        assert (d.source, d.lead_id, d.url_source) == ("db1", 77, UrlSource.VICIDIAL_RETRY)

    def test_post_and_unknown_method(self) -> None:
        """A POST the Perl sender logged is re-sent as POST; one that never completed is not guessed."""
        w, m = watch(rescue=frozenset({"sc_callurl"}))
        url = "http://crm.example/sc?a=1&b=2"
        w.feed(row(Op.INSERT, 1, "u", url_type="sc_callurl", url=url), P1)
        [d] = w.feed(
            row(Op.UPDATE, 1, "u", f"{WGET_503}|HTTP-POST|", url_type="sc_callurl", url=url), P2
        ).deliveries
        assert (d.method, d.url, d.body, d.content_type) == (
            "POST",
            "http://crm.example/sc",
            b"a=1&b=2",
            "application/x-www-form-urlencoded",
        )
        w.feed(row(Op.INSERT, 2, "u", url_type="sc_callurl", url=url, ts=1000), P1)
        assert w.expire(1000 + 1801).deliveries == []
        assert (
            m.registry.get_sample_value(
                "vicidial_cdc_hook_rescue_skipped_total",
                {"url_type": "sc_callurl", "reason": "method_unknown"},
            )
            == 1
        )

    def test_resend_refuses_what_cannot_be_sent(self) -> None:
        """A relative URL (a log row) is not a request."""
        w, _ = watch()
        w.feed(row(Op.INSERT, 1, "u", url_type="dispo", url="/agc/x.php?y=1", ts=1000), P1)
        [a] = w.tracker.expire(2000)
        assert resend_of(a) == "url_relative"


class TestConfiguredHooks:
    """check's list of the hook types this VICIdial fires, from its settings rows."""

    def test_columns_alt_rows_and_rescue(self) -> None:
        """Set columns count; ALT counts only with an active ALT row; dead needs a URL action."""
        settings = {
            CAMPAIGNS: [
                {"campaign_id": "C1", "dispo_call_url": "http://crm/d", "dead_trigger_url": "http://crm/x",
                 "dead_trigger_action": "AUDIO"},
                {"campaign_id": "C2", "dispo_call_url": "ALT", "start_call_url": "ALT", "pause_max_url": " "},
            ],
            INGROUPS: [{"group_id": "IN1", "add_lead_url": "http://crm/a", "na_call_url": ""}],
            LISTS: [{"list_id": 101, "na_call_url": "http://crm/na"}],
        }  # fmt: skip
        alts = [AltRow("C2", "campaign", "dispo"), AltRow("IN9", "ingroup", "start")]
        found = configured_hooks(settings, alts, HooksConfig(frozenset({"dispo"})))
        by_type = {h.url_type: h for h in found}
        assert list(by_type) == ["dispo", "na_callurl", "add_lead"]
        assert by_type["dispo"].owners == {CAMPAIGNS: ("C1", "C2")}
        assert (by_type["dispo"].rescue, by_type["add_lead"].rescue, by_type["add_lead"].rescuable) == (
            True,
            False,
            True,
        )
        assert by_type["na_callurl"].summary == "1 lists"

    def test_setting_columns_follow_the_build(self) -> None:
        """Columns an older build lacks are not selected."""
        present = ["campaign_id", "dispo_call_url", "start_call_url", "dead_trigger_action"]
        assert setting_columns(CAMPAIGNS, present) == (
            "campaign_id",
            "dispo_call_url",
            "start_call_url",
            "dead_trigger_action",
        )


class TestCheckReport:
    """check lists the hook types set here and whether rescue covers them; never a WARN."""

    def test_lines(self) -> None:
        """One INFO per type set, the fix to rescue a notify type, and an idle rescue named."""
        facts = HookFacts(
            settings={
                CAMPAIGNS: (
                    {"campaign_id": "C1", "dispo_call_url": "http://crm/d", "start_call_url": "http://s"},
                ),
                INGROUPS: ({"group_id": "IN1", "na_call_url": "http://crm/na"},),
            },
        )
        results = {r.name: r for r in check_hooks(facts, HooksConfig(frozenset({"dispo", "add_lead"})))}
        assert set(results) == {"hooks.dispo", "hooks.start", "hooks.na_callurl", "hooks.rescue"}
        assert {r.status for r in results.values()} == {Status.INFO}
        assert (
            "campaigns: C1" in results["hooks.dispo"].message
            and "rescue on" in results["hooks.dispo"].message
        )
        assert results["hooks.start"].fix == 'to re-send them, add "start" to [hooks] rescue'
        assert "add_lead" in results["hooks.rescue"].message

    def test_unreadable_tables(self) -> None:
        """A table the account cannot read is said once; nothing else is guessed."""
        facts = HookFacts(unreadable={CAMPAIGNS: "SELECT command denied"})
        [line] = check_hooks(facts, HooksConfig())
        assert line.name == "hooks" and "SELECT command denied" in line.message
