"""Every metric, declared once, with the ``vicidial_cdc_`` prefix and base units.

Labels are bounded: ``endpoint`` (configured name or host:port), ``table``, ``op``,
``outcome``, ``reason``, ``status_class``. Never a URL, lead, list or phone.
Gauges that mirror component state (queue depths, lag, connection) are read at scrape
time from each component's ``statistics()`` through :class:`StateCollector`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from . import __version__

_M = TypeVar("_M", bound=MetricWrapperBase)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def status_class(status: int | None) -> str:
    """``2xx`` … ``5xx``, or ``error`` when no response came back."""
    if not status:
        return "error"
    return f"{status // 100}xx"


@dataclass(frozen=True, slots=True)
class StateSample:
    """What the collector reads at scrape time (filled by the service)."""

    reader_connected: bool = False
    reader_reconnects: int = 0
    binlog_events: int = 0
    last_event_ts: float = 0.0
    lag_s: float = 0.0
    checkpoint_age_s: float = 0.0
    queue_depths: dict[str, int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    oldest_pending_age_s: dict[str, float] = field(default_factory=dict)
    circuit_state: dict[str, int] = field(default_factory=dict)
    circuit_open_s: dict[str, float] = field(default_factory=dict)
    checkpoint_file_number: float = 0.0
    checkpoint_pos: float = 0.0
    #: Seconds until the checkpoint's binlog would be expired by the server (+Inf: never).
    retention_headroom_s: float = float("inf")
    #: Bytes of binlog on the server before the checkpoint (0: it is in the oldest file).
    retention_headroom_bytes: float = float("inf")
    #: Leads held until data the streamer cannot read becomes readable, by reason (cdc.waiting).
    waiting_data: dict[str, int] = field(default_factory=dict)


class StateCollector(Collector):
    """Gauges computed from a :class:`StateSample` provider at scrape time."""

    def __init__(self, sample: Callable[[], StateSample]) -> None:
        self._sample = sample

    def collect(self) -> Iterator[Metric]:
        s = self._sample()
        info = InfoMetricFamily("vicidial_cdc_build", "Version of the running streamer.")
        info.add_metric([], {"version": __version__})
        yield info
        yield _gauge(
            "vicidial_cdc_reader_connected", "1 while the binlog connection is up.", s.reader_connected
        )
        reconnects = CounterMetricFamily(
            "vicidial_cdc_reader_reconnects", "Reconnects of the binlog reader since start."
        )
        reconnects.add_metric([], float(s.reader_reconnects))
        yield reconnects
        yield _gauge(
            "vicidial_cdc_binlog_last_event_timestamp_seconds",
            "Server timestamp of the last binlog event read.",
            s.last_event_ts,
        )
        yield _gauge("vicidial_cdc_binlog_lag_seconds", "How far the reader is behind the server.", s.lag_s)
        yield _gauge(
            "vicidial_cdc_checkpoint_age_seconds",
            "Seconds since the checkpoint last moved.",
            s.checkpoint_age_s,
        )
        depth = GaugeMetricFamily(
            "vicidial_cdc_queue_depth", "Items waiting in each queue.", labels=["queue"]
        )
        for queue, count in sorted(s.queue_depths.items()):
            depth.add_metric([queue], float(count))
        yield depth
        yield _gauge(
            "vicidial_cdc_checkpoint_binlog_file_number",
            "Number of the binlog file the checkpoint is in (binlog.000042 → 42).",
            s.checkpoint_file_number,
        )
        yield _gauge(
            "vicidial_cdc_checkpoint_binlog_position_bytes",
            "Byte offset of the checkpoint in its binlog file.",
            s.checkpoint_pos,
        )
        yield _gauge(
            "vicidial_cdc_binlog_retention_headroom_seconds",
            "Seconds until the server's binlog expiry would purge the checkpoint's data (+Inf: never).",
            s.retention_headroom_s,
        )
        yield _gauge(
            "vicidial_cdc_binlog_retention_headroom_bytes",
            "Bytes of binlog still on the server before the checkpoint (0: it is in the oldest file).",
            s.retention_headroom_bytes,
        )
        waiting = GaugeMetricFamily(
            "vicidial_cdc_leads_waiting_data",
            "Leads held until data the streamer cannot read now is readable (e.g. a custom_<list_id>"
            " table without SELECT), by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(s.waiting_data.items()):
            waiting.add_metric([reason], float(count))
        yield waiting
        families: tuple[tuple[str, str, Mapping[str, float]], ...] = (
            ("vicidial_cdc_deliveries_pending", "Deliveries waiting in the outbox.", s.pending),
            ("vicidial_cdc_deliveries_in_flight", "Requests being sent now.", s.in_flight),
            ("vicidial_cdc_deliveries_dead", "Dead letters awaiting an operator.", s.dead),
            (
                "vicidial_cdc_oldest_pending_age_seconds",
                "Age of the oldest pending delivery.",
                s.oldest_pending_age_s,
            ),
            (
                "vicidial_cdc_circuit_state",
                "Circuit breaker per endpoint: 0 closed, 1 half-open, 2 open.",
                {k: float(v) for k, v in s.circuit_state.items()},
            ),
            (
                "vicidial_cdc_circuit_open_seconds",
                "Seconds the endpoint's breaker has been open (0 when closed).",
                s.circuit_open_s,
            ),
        )
        for name, doc, values in families:
            fam = GaugeMetricFamily(name, doc, labels=["endpoint"])
            for endpoint, amount in sorted(values.items()):
                fam.add_metric([endpoint], amount)
            yield fam


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


class Metrics:
    """The counters and histograms the pipeline updates as it works."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        # process_* and python_info on our own registry (the default one is not served).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.binlog_rows = Counter(
            "vicidial_cdc_binlog_rows",
            "Rows of watched tables read, by table and op.",
            ["table", "op"],
            registry=r,
        )
        self.decode_errors = Counter(
            "vicidial_cdc_binlog_decode_errors",
            "Text values that did not decode in their column charset (kept as bytes).",
            ["table"],
            registry=r,
        )
        self.leads_detected = Counter(
            "vicidial_cdc_leads_detected", "vicidial_list inserts recognised as add_lead.", registry=r
        )
        self.leads_skipped = Counter(
            "vicidial_cdc_leads_skipped",
            "Inserts or leads that produced no request, by reason.",
            ["reason"],
            registry=r,
        )
        self.deliveries_enqueued = Counter(
            "vicidial_cdc_deliveries_enqueued", "Deliveries written to the outbox.", ["endpoint"], registry=r
        )
        self.deliveries = Counter(
            "vicidial_cdc_deliveries",
            "Delivery attempts by outcome; sender is cdc (us) or vicidial (VICIdial's own sender).",
            ["endpoint", "outcome", "sender"],
            registry=r,
        )
        self.requests = Counter(
            "vicidial_cdc_requests",
            "HTTP requests by status class; sender is cdc (us) or vicidial (VICIdial's own sender).",
            ["endpoint", "status_class", "sender"],
            registry=r,
        )
        self.request_duration = Histogram(
            "vicidial_cdc_request_duration_seconds",
            "Time from sending a request to its response (VICIdial's: whole seconds it logged).",
            ["endpoint", "sender"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "vicidial_cdc_end_to_end_latency_seconds",
            "Time from the lead insert on the server to the endpoint's response.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rate_limited = Counter(
            "vicidial_cdc_rate_limited_waits",
            "Requests that waited for the endpoint's rate limit.",
            ["endpoint"],
            registry=r,
        )
        self.mode = Gauge(
            "vicidial_cdc_mode",
            "1 for the sending mode in use (send, watch, auto).",
            ["mode"],
            registry=r,
        )
        self.vicidial_sender = Gauge(
            "vicidial_cdc_vicidial_sender_active",
            "1 when this VICIdial build sends API New Lead URLs itself (schema 1726+).",
            registry=r,
        )
        # Secrets go only where the operator said ([endpoints.NAME] allowed_origins).
        self.secret_origin_refused = Counter(
            "vicidial_cdc_secret_origin_refused",
            "Deliveries of a named endpoint not sent because their URL (from VICIdial's settings)"
            " points outside its allowed_origins; each is a dead letter.",
            ["endpoint"],
            registry=r,
        )
        # Delivery isolation: claim transactions, to see the sender sleep while blocked.
        self.outbox_claims = Counter(
            "vicidial_cdc_outbox_claims",
            "Claim transactions of the sender (one SQLite write each); near 0 while all endpoints wait.",
            registry=r,
        )
        # The steady path: rows the pipeline's commit handed straight to the sender
        # (path="handoff", no claim transaction) vs rows claimed from the outbox.
        self.deliveries_started = Counter(
            "vicidial_cdc_deliveries_started",
            "Outbox rows the sender started: handed over by the commit that stored them"
            " (path=handoff) or claimed from the outbox (path=claim).",
            ["path"],
            registry=r,
        )
        self.settings_reloads = Counter(
            "vicidial_cdc_settings_reloads",
            "Settings changes applied from the binlog.",
            ["table"],
            registry=r,
        )
        # State-store busy handling (issue 12, ops-store): writes that wait for another
        # process's write lock on the state file instead of failing.
        self.store_busy = Counter(
            "vicidial_cdc_store_busy",
            "State-store writes that found the write lock held by another process for a"
            " whole busy timeout (5 s) and tried again.",
            registry=r,
        )
        self.store_lock_wait = Histogram(
            "vicidial_cdc_store_lock_wait_seconds",
            "Time a state-store write waited for the state file's write lock.",
            buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 120.0, 300.0),
            registry=r,
        )

        # -- reader health (issue 11: faults, reconnect causes, fresh starts) ----------
        self.reader_errors = Counter(
            "vicidial_cdc_reader_errors",
            "Reader errors by kind: connection (healed by reconnecting) or a fault that is not.",
            ["kind"],
            registry=r,
        )
        self.reader_fault = Gauge(
            "vicidial_cdc_reader_fault",
            "1 for the kind of the reader fault that stands now (the reader waits, re-checking).",
            ["kind"],
            registry=r,
        )
        self.reader_disconnects = Counter(
            "vicidial_cdc_reader_disconnects",
            "Transient binlog disconnects (retried with backoff), by cause.",
            ["cause"],
            registry=r,
        )
        self.state_fresh_start = Gauge(
            "vicidial_cdc_state_fresh_start",
            "1 when this process started without a stored checkpoint (first install or a lost state file).",
            registry=r,
        )
        # Late api_log rows and leads that fail processing (branch late-rows, issue 11).
        self.leads_late = Counter(
            "vicidial_cdc_leads_late",
            "add_lead rows that came after their insert was given up on; the lead was fetched"
            " by SELECT (outcome fetched) or was gone (lead_missing).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("fetched", "lead_missing"):
            self.leads_late.labels(outcome)  # series exist (at 0) before the first late row
        self.leads_failed = Counter(
            "vicidial_cdc_leads_failed",
            "Leads whose processing raised: dead-lettered (endpoint -failed-), the stream goes on.",
            registry=r,
        )

        # VICIdial's URL hooks (issue 14, cdc.hooks): url_type is a known label or "other".
        self.hook_attempts = Counter(
            "vicidial_cdc_hook_attempts",
            "Requests VICIdial's own senders started (vicidial_url_log INSERTs), by url_type and endpoint.",
            ["url_type", "endpoint"],
            registry=r,
        )
        self.hook_outcomes = Counter(
            "vicidial_cdc_hook_outcomes",
            "How VICIdial's requests ended: ok, error, never_completed (no UPDATE within the"
            " type's timeout) or late (an UPDATE after that or after an error).",
            ["url_type", "endpoint", "outcome"],
            registry=r,
        )
        self.hook_response = Histogram(
            "vicidial_cdc_hook_response_seconds",
            "VICIdial's own response_sec of its completed requests (whole seconds).",
            ["url_type", "endpoint"],
            buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0),
            registry=r,
        )
        self.hook_pending = Gauge(
            "vicidial_cdc_hook_pending",
            "VICIdial requests started and not finished yet (INSERT without its UPDATE).",
            ["url_type"],
            registry=r,
        )
        self.hook_rescues = Counter(
            "vicidial_cdc_hook_rescues",
            "Requests VICIdial failed (cause error) or never completed, put in the outbox to re-send.",
            ["url_type", "endpoint", "cause"],
            registry=r,
        )
        self.hook_rescue_skipped = Counter(
            "vicidial_cdc_hook_rescue_skipped",
            "Failed VICIdial requests of a rescued type that cannot be re-sent as logged, by reason.",
            ["url_type", "reason"],
            registry=r,
        )
        self.hook_duplicates = Counter(
            "vicidial_cdc_hook_duplicates",
            "VICIdial requests that completed after the streamer re-sent them: the endpoint got two.",
            ["url_type", "endpoint"],
            registry=r,
        )

    def child(self, metric: _M, *labels: str) -> _M:
        """``metric.labels(*labels)``, kept: ``labels()`` validates and locks on every call,
        which costs more than the increment on the per-request path."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def add_collector(self, collector: Collector) -> None:
        self.registry.register(collector)
