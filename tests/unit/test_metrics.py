"""Metrics: every series is declared once with the project's prefix, units and bounded
labels, and reads back what the service's update calls put in."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from cdc.metrics import Metrics, StateCollector, StateSample, status_class

#: Label names a metric may carry: configured ids and closed vocabularies, never a URL,
#: lead, list or phone.
BOUNDED_LABELS = {
    "endpoint",
    "table",
    "op",
    "outcome",
    "reason",
    "status_class",
    "sender",
    "mode",
    "kind",
    "cause",
    "url_type",  # cdc.hooks.types: a known url_type or "other"
    "path",  # deliveries_started: "handoff" or "claim"
}
#: The counters and histograms the service updates, with their label names.
DECLARED = {
    "vicidial_cdc_binlog_rows": ("counter", ("table", "op")),
    "vicidial_cdc_binlog_decode_errors": ("counter", ("table",)),
    "vicidial_cdc_leads_detected": ("counter", ()),
    "vicidial_cdc_leads_skipped": ("counter", ("reason",)),
    "vicidial_cdc_deliveries_enqueued": ("counter", ("endpoint",)),
    "vicidial_cdc_deliveries": ("counter", ("endpoint", "outcome", "sender")),
    "vicidial_cdc_requests": ("counter", ("endpoint", "status_class", "sender")),
    "vicidial_cdc_request_duration_seconds": ("histogram", ("endpoint", "sender")),
    "vicidial_cdc_end_to_end_latency_seconds": ("histogram", ("endpoint",)),
    "vicidial_cdc_rate_limited_waits": ("counter", ("endpoint",)),
    "vicidial_cdc_mode": ("gauge", ("mode",)),
    "vicidial_cdc_vicidial_sender_active": ("gauge", ()),
    "vicidial_cdc_secret_origin_refused": ("counter", ("endpoint",)),
    "vicidial_cdc_outbox_claims": ("counter", ()),
    "vicidial_cdc_deliveries_started": ("counter", ("path",)),
    "vicidial_cdc_settings_reloads": ("counter", ("table",)),
    "vicidial_cdc_store_busy": ("counter", ()),
    "vicidial_cdc_store_lock_wait_seconds": ("histogram", ()),
    "vicidial_cdc_reader_errors": ("counter", ("kind",)),
    "vicidial_cdc_reader_fault": ("gauge", ("kind",)),
    "vicidial_cdc_reader_disconnects": ("counter", ("cause",)),
    "vicidial_cdc_state_fresh_start": ("gauge", ()),
    "vicidial_cdc_leads_late": ("counter", ("outcome",)),
    "vicidial_cdc_leads_failed": ("counter", ()),
    "vicidial_cdc_hook_attempts": ("counter", ("url_type", "endpoint")),
    "vicidial_cdc_hook_outcomes": ("counter", ("url_type", "endpoint", "outcome")),
    "vicidial_cdc_hook_response_seconds": ("histogram", ("url_type", "endpoint")),
    "vicidial_cdc_hook_pending": ("gauge", ("url_type",)),
    "vicidial_cdc_hook_rescues": ("counter", ("url_type", "endpoint", "cause")),
    "vicidial_cdc_hook_rescue_skipped": ("counter", ("url_type", "reason")),
    "vicidial_cdc_hook_duplicates": ("counter", ("url_type", "endpoint")),
}
#: Gauges the scrape-time collector reports, with their label names.
COLLECTED = {
    "vicidial_cdc_build": ("info", ()),
    "vicidial_cdc_reader_connected": ("gauge", ()),
    "vicidial_cdc_reader_reconnects": ("counter", ()),
    "vicidial_cdc_binlog_last_event_timestamp_seconds": ("gauge", ()),
    "vicidial_cdc_binlog_lag_seconds": ("gauge", ()),
    "vicidial_cdc_checkpoint_age_seconds": ("gauge", ()),
    "vicidial_cdc_queue_depth": ("gauge", ("queue",)),
    "vicidial_cdc_checkpoint_binlog_file_number": ("gauge", ()),
    "vicidial_cdc_checkpoint_binlog_position_bytes": ("gauge", ()),
    "vicidial_cdc_binlog_retention_headroom_seconds": ("gauge", ()),
    "vicidial_cdc_binlog_retention_headroom_bytes": ("gauge", ()),
    "vicidial_cdc_leads_waiting_data": ("gauge", ("reason",)),
    "vicidial_cdc_deliveries_pending": ("gauge", ("endpoint",)),
    "vicidial_cdc_deliveries_in_flight": ("gauge", ("endpoint",)),
    "vicidial_cdc_deliveries_dead": ("gauge", ("endpoint",)),
    "vicidial_cdc_oldest_pending_age_seconds": ("gauge", ("endpoint",)),
    "vicidial_cdc_circuit_state": ("gauge", ("endpoint",)),
    "vicidial_cdc_circuit_open_seconds": ("gauge", ("endpoint",)),
}
#: Base units go last in a name (prometheus.io, "Metric and label naming").
_UNIT_MISPLACED = re.compile(r"_(seconds|bytes)_(?!total$|bucket$|count$|sum$|created$)")


def _families(registry: CollectorRegistry) -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, label names of its samples) for every ``vicidial_cdc_`` family."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for family in registry.collect():
        if not family.name.startswith("vicidial_cdc_"):
            continue
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le", "version"}
        out[family.name] = (family.type, tuple(sorted(labels)))
    return out


def _sorted(declared: dict[str, tuple[str, tuple[str, ...]]]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {name: (kind, tuple(sorted(labels))) for name, (kind, labels) in declared.items()}


class TestDeclared:
    """The metric set is fixed: names, types and label names, all on the service's own registry."""

    def test_declared_metrics(self) -> None:
        """Every counter, histogram and gauge the service updates is declared with its labels."""
        metrics = Metrics()
        by_name = {
            m.describe()[0].name: m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)
        }
        for name, (_kind, labels) in DECLARED.items():
            if labels:  # a labelled family shows its label names once a child exists
                metrics.child(by_name[name], *(f"x{i}" for i in range(len(labels))))
        assert _families(metrics.registry) == _sorted(DECLARED)

    def test_collected_gauges(self) -> None:
        """The scrape-time collector reports every state gauge with its labels."""
        registry = CollectorRegistry()
        registry.register(
            StateCollector(
                lambda: StateSample(
                    queue_depths={"outbox": 1},
                    waiting_data={"custom_unreadable": 1},
                    pending={"crm": 1},
                    in_flight={"crm": 1},
                    dead={"crm": 1},
                    oldest_pending_age_s={"crm": 1.0},
                    circuit_state={"crm": 0},
                    circuit_open_s={"crm": 0.0},
                )
            )
        )
        assert _families(registry) == _sorted(COLLECTED)

    def test_names_follow_the_conventions(self) -> None:
        """Prefix vicidial_cdc_, base unit last, labels from the bounded set only."""
        for name, (_kind, labels) in {**DECLARED, **COLLECTED}.items():
            assert name.startswith("vicidial_cdc_"), name
            assert not _UNIT_MISPLACED.search(name), name
            assert set(labels) <= BOUNDED_LABELS | {"queue"}, name

    def test_process_metrics_on_own_registry(self) -> None:
        """process_* and python_* are served from the service's registry, not the global one."""
        names = {family.name for family in Metrics().registry.collect()}
        assert "python_info" in names
        assert "python_gc_objects_collected" in names

    def test_two_instances_do_not_collide(self) -> None:
        """Each Metrics has its own registry: a second instance (a restarted service) is allowed."""
        first, second = Metrics(), Metrics()
        first.leads_detected.inc()
        assert second.registry.get_sample_value("vicidial_cdc_leads_detected_total") == 0.0

    def test_late_outcomes_exist_at_zero(self) -> None:
        """The late-row outcomes are exported at 0 before the first late row."""
        registry = Metrics().registry
        for outcome in ("fetched", "lead_missing"):
            assert registry.get_sample_value("vicidial_cdc_leads_late_total", {"outcome": outcome}) == 0.0


class TestUpdates:
    """Values read back as the service's update calls left them."""

    def test_counters_by_label(self) -> None:
        """Counter children count per label set, independently."""
        metrics = Metrics()
        metrics.child(metrics.deliveries, "crm", "ok", "cdc").inc()
        metrics.child(metrics.deliveries, "crm", "ok", "cdc").inc()
        metrics.child(metrics.deliveries, "crm", "retry", "cdc").inc()
        metrics.child(metrics.leads_skipped, "list_disabled").inc(3)
        get = metrics.registry.get_sample_value
        assert (
            get("vicidial_cdc_deliveries_total", {"endpoint": "crm", "outcome": "ok", "sender": "cdc"}) == 2
        )
        assert (
            get("vicidial_cdc_deliveries_total", {"endpoint": "crm", "outcome": "retry", "sender": "cdc"})
            == 1
        )
        assert get("vicidial_cdc_leads_skipped_total", {"reason": "list_disabled"}) == 3

    def test_child_is_kept(self) -> None:
        """``child`` returns the same labelled child each time (no per-request ``labels()``)."""
        metrics = Metrics()
        first = metrics.child(metrics.requests, "crm", "2xx", "cdc")
        assert metrics.child(metrics.requests, "crm", "2xx", "cdc") is first
        assert metrics.child(metrics.requests, "crm", "5xx", "cdc") is not first

    def test_histogram_buckets(self) -> None:
        """A request duration lands in its bucket, the count and sum follow."""
        metrics = Metrics()
        metrics.child(metrics.request_duration, "crm", "cdc").observe(0.07)
        get = metrics.registry.get_sample_value
        labels = {"endpoint": "crm", "sender": "cdc"}
        assert get("vicidial_cdc_request_duration_seconds_bucket", {**labels, "le": "0.05"}) == 0
        assert get("vicidial_cdc_request_duration_seconds_bucket", {**labels, "le": "0.1"}) == 1
        assert get("vicidial_cdc_request_duration_seconds_count", labels) == 1
        assert get("vicidial_cdc_request_duration_seconds_sum", labels) == pytest.approx(0.07)

    def test_gauges_set(self) -> None:
        """The mode and fault gauges hold what was set last."""
        metrics = Metrics()
        metrics.mode.labels("send").set(1)
        metrics.reader_fault.labels("schema_ambiguous").set(1)
        metrics.reader_fault.labels("schema_ambiguous").set(0)
        get = metrics.registry.get_sample_value
        assert get("vicidial_cdc_mode", {"mode": "send"}) == 1
        assert get("vicidial_cdc_reader_fault", {"kind": "schema_ambiguous"}) == 0

    def test_collector_reads_state_at_scrape_time(self) -> None:
        """The state gauges show the sample of the moment of the scrape, not of registration."""
        metrics = Metrics()
        samples = [
            StateSample(reader_connected=True, lag_s=1.5, pending={"crm": 4}, circuit_state={"crm": 2})
        ]
        metrics.add_collector(StateCollector(lambda: samples[-1]))
        get = metrics.registry.get_sample_value
        assert get("vicidial_cdc_reader_connected") == 1
        assert get("vicidial_cdc_binlog_lag_seconds") == 1.5
        assert get("vicidial_cdc_deliveries_pending", {"endpoint": "crm"}) == 4
        assert get("vicidial_cdc_circuit_state", {"endpoint": "crm"}) == 2
        samples.append(StateSample(reader_connected=False, reader_reconnects=2))
        assert get("vicidial_cdc_reader_connected") == 0
        assert get("vicidial_cdc_reader_reconnects_total") == 2
        assert get("vicidial_cdc_deliveries_pending", {"endpoint": "crm"}) is None

    def test_retention_headroom_defaults_to_infinity(self) -> None:
        """Before the retention check has run, the headroom is +Inf (no alert fires)."""
        registry = CollectorRegistry()
        registry.register(StateCollector(StateSample))
        assert registry.get_sample_value("vicidial_cdc_binlog_retention_headroom_seconds") == float("inf")
        assert registry.get_sample_value("vicidial_cdc_binlog_retention_headroom_bytes") == float("inf")

    def test_build_info(self) -> None:
        """The build info carries the package version."""
        from cdc import __version__

        registry = CollectorRegistry()
        registry.register(StateCollector(StateSample))
        assert registry.get_sample_value("vicidial_cdc_build_info", {"version": __version__}) == 1


class TestStatusClass:
    """HTTP statuses map to a bounded label."""

    @pytest.mark.parametrize(
        ("status", "label"), [(200, "2xx"), (204, "2xx"), (301, "3xx"), (429, "4xx"), (503, "5xx")]
    )
    def test_classes(self, status: int, label: str) -> None:
        """A status maps to its class."""
        assert status_class(status) == label

    @pytest.mark.parametrize("status", [None, 0])
    def test_no_response_is_error(self, status: int | None) -> None:
        """No response (a connection error or timeout) is ``error``."""
        assert status_class(status) == "error"
